"""HL7 v2 commands of the `hie` CLI: `hie send`, `hie errors list|show`, `hie replay`.

`hie send` is an MLLP client for files and folders (one message per file, or batch files
with FHS/BHS, or several MSH in one file); it prints a progress bar and a summary of ACK
codes (`AA 230  AE 4 …`) and exits 1 when any message was not accepted (AA, or CA in
enhanced mode without an application ACK), 2 when it cannot connect.

May import: typer, rich, `ehr_store`, `ehr_store.empi`, `terminology` and `adapters` (public
modules), `hie_server.settings`.
"""

from __future__ import annotations

import codecs
from collections import Counter
from pathlib import Path
from typing import Annotated, Literal

import typer
from fastapi import APIRouter
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from adapters import IngestService, MllpClient, MllpError, MllpServer, python_codec, read_ack, split_batch
from adapters.http import hl7v2_router
from ehr_store import Conflict, NotFound, Store, Unavailable
from ehr_store.empi import EmpiService, load_rules
from hie_server.auth.ingest_audit import ingest_audit_hook
from hie_server.auth.install import audit_enabled, serving_settings
from hie_server.auth.mllp import mllp_gate
from hie_server.cli_common import DatabaseUrl, open_for
from hie_server.mllp_processes import MllpProcesses, check_processes
from hie_server.runtime import BackgroundService
from hie_server.settings import HieSettings
from terminology import TerminologyService

MESSAGE_SUFFIXES = {".hl7", ".er7", ".msg", ".txt", ".hl7v2", ".batch"}
ACCEPTED = {"AA", "CA"}
console = Console(stderr=True)
errors_app = typer.Typer(no_args_is_help=True, help="The HL7 v2 error queue (rejected and failed messages)")


def message_files(paths: list[Path]) -> list[Path]:
    """Files to send: given files as is; folders recursively (HL7 suffixes only), sorted."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in MESSAGE_SUFFIXES and not p.name.startswith(".")
            )
        elif path.is_file():
            out.append(path)
        else:
            raise typer.BadParameter(f"{path} does not exist")
    return out


def send(
    paths: Annotated[list[Path], typer.Argument(help="Message files or folders")],
    host: Annotated[str, typer.Option(help="MLLP host")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="MLLP port")] = 2575,
    tls: Annotated[bool, typer.Option("--tls", help="Use TLS")] = False,
    ca: Annotated[Path | None, typer.Option(help="CA bundle for --tls")] = None,
    cert: Annotated[Path | None, typer.Option(help="Client certificate (PEM) for --tls")] = None,
    key: Annotated[Path | None, typer.Option(help="Client key (PEM) for --tls")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each ACK")] = 30.0,
) -> None:
    """Send HL7 v2 messages over MLLP and summarise the ACKs (INTERFACES.md `hie send`)."""
    files = message_files(paths)
    messages = [(f, m) for f in files for m in split_batch(f.read_bytes())]
    counts: Counter[str] = Counter()
    failed: list[str] = []
    try:
        with (
            MllpClient(
                host, port, tls=tls, ca_file=ca, cert_file=cert, key_file=key, timeout=timeout
            ) as client,
            Progress(
                TextColumn("sending"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            ) as progress,
        ):
            task = progress.add_task("send", total=len(messages))
            for path, message in messages:
                info = read_ack(client.send(message)[-1])
                counts[info.code] += 1
                if info.code not in ACCEPTED:
                    detail = "; ".join(f"{c} {t}" for c, t in info.errors) or "no ERR"
                    failed.append(f"{path}: {info.code} {detail}"[:200])
                progress.advance(task)
    except MllpError as exc:
        console.print(f"[red]send failed after {sum(counts.values())} message(s): {exc}[/red]")
        raise typer.Exit(2) from None
    for line in failed[:50]:
        console.print(f"[yellow]{line}[/yellow]")
    order = ["AA", "CA", "AE", "AR", "CE", "CR"]
    summary = "  ".join(f"{c} {counts[c]}" for c in order + sorted(set(counts) - set(order)) if c in counts)
    typer.echo(f"sent {len(messages)} message(s) from {len(files)} file(s): {summary or 'nothing'}")
    if failed:
        raise typer.Exit(1)


def _service(database_url: str | None) -> tuple[Store, IngestService]:
    settings, store = open_for(database_url)  # audited like `hie serve` (replays write)
    return store, build_ingest_service(serving_settings(settings), store)


@errors_app.command("list")
def errors_list(
    database_url: DatabaseUrl = None, limit: Annotated[int, typer.Option(help="At most this many")] = 50
) -> None:
    """Rejected, failed and unfinished messages, newest first."""
    store, service = _service(database_url)
    try:
        queue = service.error_queue(limit=limit)
    finally:
        store.close()
    table = Table(title=f"HL7 v2 error queue ({len(queue)} shown)")
    for col in ("id", "received", "facility", "control id", "type", "status", "ACK", "error"):
        table.add_column(col)
    for m in queue:
        table.add_row(
            str(m.id),
            m.received_at.strftime("%Y-%m-%d %H:%M:%S"),
            m.sending_facility or "",
            m.control_id or "",
            m.message_type or "",
            m.status,
            m.ack_code or "",
            (m.error or "")[:70],
        )
    Console().print(table)


@errors_app.command("show")
def errors_show(
    message_id: Annotated[int, typer.Argument(help="Archive id")], database_url: DatabaseUrl = None
) -> None:
    """One archived message: outcome, ACK sent and the raw message."""
    store = _service(database_url)[0]
    try:
        with store.unit_of_work() as uow:
            m = uow.messages.get(message_id)
    except NotFound as exc:
        console.print(f"[red]{exc.diagnostics}[/red]")
        raise typer.Exit(1) from None
    finally:
        store.close()
    codec = _codec(m.charset)
    typer.echo(f"id {m.id}  received {m.received_at.isoformat()}  via {m.transport} from {m.peer or '-'}")
    typer.echo(
        f"sender {m.sending_application or '-'}/{m.sending_facility or '-'}  control id "
        f"{m.control_id or '-'}  type {m.message_type or '-'}  charset {m.charset or '-'}"
    )
    typer.echo(f"status {m.status}  ACK {m.ack_code or '-'}  attempts {m.attempts}")
    if m.error:
        typer.echo(f"error  {m.error}")
    if m.resources:
        typer.echo(f"resources {', '.join(m.resources)}")
    typer.echo("--- ACK ---")
    typer.echo((m.ack or b"").decode(codec, errors="replace").replace("\r", "\n"))
    typer.echo("--- message ---")
    typer.echo(m.raw.decode(codec, errors="replace").replace("\r\n", "\n").replace("\r", "\n"))


def _codec(name: str | None) -> str:
    """A Python codec for an archived charset (the codec used, or MSH-18 as declared)."""
    codec = python_codec(name) or name or "utf-8"
    try:
        return codecs.lookup(codec).name
    except LookupError:
        return "utf-8"


def replay(
    message_id: Annotated[int | None, typer.Argument(help="Archive id to replay")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay the whole error queue")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replay a message that is not in the error queue")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Re-run messages of the error queue (status error/rejected) after a mapping or settings
    fix; a processed message only with --force (its old data would overwrite later updates).
    Prints each message that still fails and why; exits 1 if any still fails."""
    if (message_id is None) == (not all_):
        raise typer.BadParameter("give a message id or --all")
    store, service = _service(database_url)
    try:
        results = service.replay_all() if all_ else [service.replay(message_id or 0, force=force)]
        failed = [r for r in results if r.outcome != "AA"]
        with store.unit_of_work() as uow:
            reasons = [(r.message_id, uow.messages.get(r.message_id).error) for r in failed if r.message_id]
    except (NotFound, Conflict) as exc:
        console.print(f"[red]{exc.diagnostics}[/red]")
        raise typer.Exit(1) from None
    finally:
        store.close()
    outcomes = Counter(r.outcome for r in results)
    typer.echo(
        f"replayed {len(results)} message(s): " + "  ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
    )
    for mid, reason in reasons:
        typer.echo(f"  message {mid} failed: {reason or 'no reason recorded'}")
    if failed:
        raise typer.Exit(1)


def build_ingest_service(
    settings: HieSettings,
    store: Store,
    *,
    terminology: TerminologyService | None = None,
    empi: EmpiService | None = None,
) -> IngestService:
    """The ingest service of `hie serve` (and `hie replay`): the EMPI as identity hook, the
    terminology service translating coded elements (issue 5), and, when audit is on
    (`audit_enabled`), one AuditEvent per MLLP/replayed message in the unit of work that
    records its outcome (`hie_server.auth.ingest_audit`, issue 6). Pass the server's own
    `terminology`/`empi` instances to share their caches; new ones are made otherwise."""
    return IngestService(
        store,
        settings.ingest,
        identity_hooks=empi or EmpiService(load_rules(settings.empi)),
        terminology=terminology or TerminologyService(store, settings.terminology),
        before_commit=ingest_audit_hook(settings.audit.site) if audit_enabled(settings) else None,
    )


def mllp_services(
    settings: HieSettings,
    store: Store,
    mllp_port: int | None = None,
    service: IngestService | None = None,
    *,
    role: Literal["main", "worker"] = "main",
) -> list[BackgroundService]:
    """The MLLP listener for `hie serve` (none when `HIE_MLLP__ENABLED=false`), each connection
    held to its client certificate's facility (`hie_server.auth.mllp.mllp_gate`); with
    `HIE_MLLP__PROCESSES` > 1 (PostgreSQL), the worker processes listening on the same port
    after it (`hie_server.mllp_processes`); `role` "worker": a worker's own listener, joining
    the port the main one holds.
    Raises: Unavailable when the processes setting cannot be served (`check_processes`)."""
    if not settings.mllp.enabled:
        return []
    mllp = settings.mllp if mllp_port is None else settings.mllp.model_copy(update={"port": mllp_port})
    why = check_processes(settings)
    if why is not None:
        raise Unavailable(why)
    gate = mllp_gate(settings.auth)  # a feed writes only as its own facility (docs/security.md)
    shared = mllp.processes > 1
    server = MllpServer(
        service or build_ingest_service(settings, store),
        mllp,
        gate=gate,
        share_port=("join" if role == "worker" else "first") if shared else None,
    )
    if role == "worker" or not shared:
        return [server]
    return [server, MllpProcesses(settings.model_copy(update={"mllp": mllp}), lambda: server.port)]


def http_routers(
    settings: HieSettings, store: Store, service: IngestService | None = None
) -> list[APIRouter]:
    """`POST /hl7v2` for the app root (`create_app(root_routers=...)`)."""
    return [hl7v2_router(service or build_ingest_service(settings, store))]


def register(app: typer.Typer) -> None:
    """Add `send`, `errors` and `replay` to the `hie` app."""
    app.command("send")(send)
    app.command("replay")(replay)
    app.add_typer(errors_app, name="errors")
