"""Operator commands of the `hie` CLI: `hie synth` (synthetic feed) and `hie demo` (the main
job end to end on the embedded default: schema, server, feed, MLLP send, summary).

`hie demo` drives the exchange only through its external interfaces (INTERFACES.md): it
starts `hie serve` as a child process, waits for `GET /fhir/metadata`, sends the feed with
`hie send` over MLLP, and counts resources through the FHIR API.

May import: typer, rich, httpx, `ehr_store` and `adapters` (public APIs), `hie_server.*`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from adapters.synth import FeedSummary, generate_feed
from ehr_store import DomainError
from ehr_store.empi import EMPI_TAG_SYSTEM
from hie_server.cli_common import env_settings
from hie_server.settings import with_overrides

HIE = [sys.executable, "-c", "from hie_server.cli import main; main()"]
"""How to run `hie` from here: the same interpreter, so no PATH or venv activation is needed."""

SUMMARY_TYPES = (
    "Patient", "Encounter", "Condition", "Observation", "DiagnosticReport", "ServiceRequest",
    "Immunization", "DocumentReference", "Appointment", "ChargeItem", "Practitioner", "Organization",
    "Provenance",
)
"""Resource types counted in the demo summary (`GET /fhir/{type}?_summary=count`)."""

_SEND_SUMMARY = re.compile(r"^sent \d+ message\(s\) from \d+ file\(s\): (.*)$", re.MULTILINE)
_ACK_COUNT = re.compile(r"\b(AA|AE|AR|CA|CE|CR) (\d+)\b")

console = Console()


def synth(
    outdir: Annotated[Path, typer.Argument(help="New or empty directory to write the feed into")],
    residents: Annotated[int, typer.Option("--residents", min=1, help="Number of residents")] = 100,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same bytes)")] = 1,
    bad: Annotated[bool, typer.Option("--bad/--no-bad", help="Add malformed examples in feeds/BAD")] = True,
) -> None:
    """Write a synthetic HL7 v2 feed: feeds/<FACILITY>/NNNNN.hl7, truth.jsonl, residents.jsonl."""
    started = time.perf_counter()
    try:
        summary = generate_feed(outdir, residents=residents, seed=seed, bad=bad)
    except DomainError as exc:
        typer.secho(f"synth: {exc.diagnostics}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    _print_feed(summary, time.perf_counter() - started)


def _print_feed(summary: FeedSummary, seconds: float) -> None:
    by_type = ", ".join(f"{t} {n}" for t, n in sorted(summary.by_type.items()))
    console.print(
        f"wrote {summary.messages} messages ({by_type}) and {summary.bad} malformed ones for "
        f"{summary.residents} residents to {summary.outdir} in {seconds:.1f} s; "
        f"{summary.observations} observations; truth in {summary.outdir / 'truth.jsonl'}"
    )


def wait_ready(base_url: str, process: subprocess.Popen[bytes] | None, timeout: float = 90.0) -> None:
    """Poll `GET {base_url}/metadata` until it answers 200 (INTERFACES.md readiness probe).

    Raises: RuntimeError when `process` exits first or `timeout` seconds pass.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"hie serve exited with status {process.returncode} before it was ready")
        try:
            if httpx.get(f"{base_url}/metadata", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{base_url}/metadata did not answer 200 within {timeout:.0f} s")


def count_resources(base_url: str, types: tuple[str, ...] = SUMMARY_TYPES) -> dict[str, int]:
    """`Bundle.total` of `GET {base_url}/{type}?_summary=count` for each type (FHIR R4B §3.1.1.5.7),
    plus `resident records` (active Patients tagged golden by the EMPI; one resident can hold two
    while an EMPI review item is open) and `retired by merges` (golden, inactive: A40 merges).

    Types the server does not support (4xx) are left out. Raises: httpx.HTTPError on transport errors.
    """
    queries: list[tuple[str, str, dict[str, str]]] = [(rtype, rtype, {}) for rtype in types]
    golden = {"_tag": f"{EMPI_TAG_SYSTEM}|golden"}
    queries[:0] = [
        ("resident records", "Patient", {**golden, "active": "true"}),
        ("retired by merges", "Patient", {**golden, "active": "false"}),
    ]
    counts: dict[str, int] = {}
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        for label, rtype, params in queries:
            reply = client.get(f"/{rtype}", params={**params, "_summary": "count"})
            if reply.status_code == 200 and isinstance(reply.json().get("total"), int):
                counts[label] = reply.json()["total"]
    return counts


def ack_counts(send_output: str) -> dict[str, int]:
    """The ACK code counts from `hie send`'s closing line
    (`sent 201 message(s) from 201 file(s): AA 150  CA 44  AE 5  AR 2`); empty when absent."""
    summary = _SEND_SUMMARY.search(send_output)
    if summary is None:
        return {}
    return {code: int(number) for code, number in _ACK_COUNT.findall(summary.group(1))}


def feed_paths(feed: Path) -> list[str]:
    """The feed's facility folders in sending order (each folder's files sorted by number)."""
    return [str(p) for p in sorted((feed / "feeds").iterdir()) if p.is_dir()]


def send_feed(feed: Path, host: str, mllp_port: int) -> tuple[int, str]:
    """Run `hie send --host --port` over the feed's folders; (exit status, combined output)."""
    result = subprocess.run(
        [*HIE, "send", "--host", host, "--port", str(mllp_port), *feed_paths(feed)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
    )
    return result.returncode, result.stdout + result.stderr


def facility_registry_env(feed: Path) -> dict[str, str]:
    """`HIE_INGEST__FACILITIES` registering the feed's senders (from its `facilities.json`).

    Each gets its charset (used when MSH-18 is empty or wrong) and, when its timestamps carry
    no offset, `assume_offset` +08:00 — what an operator registers for a new clinic.
    """
    registry = {
        f["code"]: {"name": f["name"], "charset": f["charset"],
                    **({} if f["timestamps_with_zone"] else {"assume_offset": "+08:00"})}
        for f in json.loads((feed / "facilities.json").read_text(encoding="utf-8"))
    }
    return {"HIE_INGEST__FACILITIES": json.dumps(registry, ensure_ascii=False)}


def _expected(feed: Path) -> tuple[int, int]:
    rows = [json.loads(line) for line in (feed / "truth.jsonl").read_text(encoding="utf-8").splitlines()]
    accept = sum(1 for r in rows if str(r.get("expect", "accept")).startswith("accept"))
    return accept, len(rows) - accept


def _summary_table(feed: Path, acks: dict[str, int], counts: dict[str, int]) -> Table:
    accept, reject = _expected(feed)
    residents = sum(1 for _ in (feed / "residents.jsonl").open(encoding="utf-8"))
    table = Table(title="Qingyuan HIE demo: summary", show_header=False)
    table.add_row("messages in feed", str(accept + reject))
    table.add_row("accepted (AA/CA)", f"{acks.get('AA', 0) + acks.get('CA', 0)}  (expected {accept})")
    rejected = sum(acks.get(c, 0) for c in ("AE", "AR", "CE", "CR"))
    table.add_row("rejected (AE/AR/CE/CR)", f"{rejected}  (expected {reject})")
    table.add_row("residents in feed", str(residents))
    for label, n in counts.items():
        table.add_row(label, str(n))
    return table


def demo(
    residents: Annotated[int, typer.Option("--residents", min=1, help="Residents in the demo feed")] = 60,
    seed: Annotated[int, typer.Option("--seed")] = 1,
    host: Annotated[str | None, typer.Option(help="Listen address (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default 8080)")] = None,
    mllp_port: Annotated[int, typer.Option("--mllp-port", help="MLLP port")] = 2575,
    database_url: Annotated[str | None, typer.Option(help="Default: HIE_DATABASE_URL")] = None,
    workdir: Annotated[Path, typer.Option(help="Where the demo feed is written")] = Path("var/demo"),
    exit_after: Annotated[bool, typer.Option("--exit", help="Stop the server after the summary")] = False,
) -> None:
    """The main job: schema, `hie serve`, synthetic feed over MLLP, summary; serves until Ctrl-C.

    Upgrades the database, starts `hie serve` as a child process, writes a synthetic feed
    under WORKDIR (reused when it exists), sends it with `hie send`, prints accepted and
    rejected counts and resources by type, then keeps serving http://HOST:PORT/fhir.
    """
    from ehr_store import upgrade_schema

    settings = with_overrides(env_settings(), host=host, port=port, database_url=database_url)
    url = settings.store.database_url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    console.print(f"database {url}: schema revision {upgrade_schema(url)}")
    feed = workdir / f"feed-seed{seed}-{residents}"
    if not (feed / "truth.jsonl").exists():
        started = time.perf_counter()
        _print_feed(generate_feed(feed, residents=residents, seed=seed), time.perf_counter() - started)
    base = f"http://{settings.http.host}:{settings.http.port}{settings.http.base_path}"
    for what, number in (("HTTP", settings.http.port), ("MLLP", mllp_port)):
        _require_free_port(settings.http.host, number, what)
    registry = facility_registry_env(feed)
    env_file = _write_env_file(workdir, {"HIE_DATABASE_URL": url, **registry})
    server = subprocess.Popen(
        [*HIE, "serve", "--host", settings.http.host, "--port", str(settings.http.port),
         "--mllp-port", str(mllp_port), "--database-url", url],
        stdin=subprocess.DEVNULL, env={**os.environ, **registry},
    )
    previous = _stop_on_sigterm()
    try:
        wait_ready(base, server)
        console.print(f"server ready at {base} (MLLP on {settings.http.host}:{mllp_port})")
        status, output = send_feed(feed, settings.http.host, mllp_port)
        console.print(output.strip()[-2000:], markup=False, highlight=False)
        acks = ack_counts(output)
        console.print(_summary_table(feed, acks, count_resources(base)))
        if not acks:
            raise RuntimeError(f"hie send failed (exit status {status}) before reporting acknowledgements")
        if exit_after:
            return
        console.print(f"browse {base}/Patient  ·  API docs {base.removesuffix(settings.http.base_path)}/docs"
                      "  ·  Ctrl-C to stop")
        console.print(f"`hie errors` / `hie replay` with the demo's database and facility registry: "
                      f"set -a; . {env_file}; set +a", markup=False, highlight=False)
        server.wait()
    except KeyboardInterrupt:
        console.print("stopping")
    except RuntimeError as exc:
        typer.secho(f"demo: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    finally:
        _stop(server)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _write_env_file(workdir: Path, variables: dict[str, str]) -> Path:
    """`workdir/demo.env`: the settings the demo's server runs with, as shell assignments, so
    CLI commands (`hie errors`, `hie replay`) can run with the same ones."""
    path = workdir / "demo.env"
    path.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in variables.items()), encoding="utf-8")
    return path


def _stop_on_sigterm() -> Any:
    """SIGTERM (a supervisor, `timeout`, `kill`) ends the demo like Ctrl-C, so its server is
    stopped too instead of left running on the ports. Returns the previous handler (None when
    not on the main thread)."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (signals cannot be set there)
        return None


def _require_free_port(host: str, port: int, what: str) -> None:
    """Refuse to start when `port` is taken, so the readiness probe cannot be answered by another
    server (e.g. a `make demo` still running). Raises: typer.Exit(1) with a message."""
    with socket.socket() as probe:
        # as servers bind (uvicorn, asyncio): a port whose last connections are in TIME_WAIT is free
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            console.print(
                f"[red]{what} port {host}:{port} is in use (another `hie serve` or `make demo`?); "
                f"stop it or choose another port (--port / --mllp-port)[/red]"
            )
            raise typer.Exit(1) from None


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def register(app: typer.Typer) -> None:
    """Add `synth` and `demo` to the `hie` command line."""
    app.command("synth")(synth)
    app.command("demo")(demo)
