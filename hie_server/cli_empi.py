"""`hie empi review` (work the EMPI review queue) and `hie empi import residents.csv`.

Wiring: `hie_server.cli` calls `cli_empi.register(app)`.

May import: typer, rich, `ehr_store`, `ehr_store.empi`, `hie_server.settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ehr_store import Store
from ehr_store.empi import EmpiService, import_residents, load_rules, read_rows
from hie_server.cli_common import DatabaseUrl, open_for

empi_app = typer.Typer(no_args_is_help=True, help="Resident identity (EMPI): review queue, register import")
console = Console()


def _store(database_url: str | None) -> Store:
    return open_for(database_url)[1]


def _mask(value: str) -> str:
    """Identifiers are shown masked (never print a full 身份证号)."""
    return value if len(value) < 8 else f"{value[:6]}{'*' * (len(value) - 10)}{value[-4:]}"


def _side_by_side(source: dict[str, Any], golden: dict[str, Any], levels: dict[str, str]) -> Table:
    table = Table("field", "incoming source Patient", "candidate resident record", "agreement")

    def name(p: dict[str, Any]) -> str:
        n = (p.get("name") or [{}])[0]
        return str(n.get("text") or f"{n.get('family', '')}{''.join(n.get('given', []))}")

    def phones(p: dict[str, Any]) -> str:
        return ", ".join(_mask(str(t.get("value", ""))) for t in p.get("telecom", []))

    def addr(p: dict[str, Any]) -> str:
        a = (p.get("address") or [{}])[0]
        return " ".join([str(a.get("district", "")), *[str(x) for x in a.get("line", [])]])

    def ids(p: dict[str, Any]) -> str:
        return ", ".join(_mask(str(i.get("value", ""))) for i in p.get("identifier", []))

    rows = [
        ("name", name, "given"),
        ("birthDate", lambda p: str(p.get("birthDate", "")), "birth_date"),
        ("gender", lambda p: str(p.get("gender", "")), "sex"),
        ("phone", phones, "phone"),
        ("address", addr, "address"),
        ("identifiers", ids, ""),
    ]
    for label, get, level in rows:
        table.add_row(label, get(source), get(golden), levels.get(level, ""))
    return table


@empi_app.command("review")
def review(
    database_url: DatabaseUrl = None,
    limit: Annotated[int, typer.Option(help="Items to go through in this session")] = 20,
    reviewer: Annotated[str, typer.Option(help="Name recorded as who decided")] = "cli",
) -> None:
    """Work the review queue: for each possible match choose link, separate or skip."""
    store = _store(database_url)
    service = EmpiService(load_rules())
    try:
        with store.unit_of_work() as uow:
            items = service.index(uow.resources).reviews(limit=limit)
        if not items:
            console.print("the review queue is empty")
            return
        for item in items:
            with store.unit_of_work(write=True) as uow:
                repo = uow.resources
                source = repo.read("Patient", item.source_id).as_dict()
                golden = repo.read("Patient", item.golden_id).as_dict()
                console.rule(f"review #{item.id}  score {item.score:.1f}  rule {item.rule}")
                console.print(_side_by_side(source, golden, item.details.get("levels", {})))
                choice = typer.prompt("[l]ink / [s]eparate / s[k]ip / [q]uit", default="k").strip().lower()
                if choice.startswith("q"):
                    return
                if choice in ("l", "link"):
                    service.decide_review(repo, item.id, "link", by=reviewer)
                elif choice in ("s", "separate"):
                    service.decide_review(repo, item.id, "separate", by=reviewer)
                else:
                    continue
                uow.commit()
                console.print(f"review #{item.id}: {'linked' if choice.startswith('l') else 'kept separate'}")
    finally:
        store.close()


@empi_app.command("import")
def import_command(
    csv_path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="residents.csv (UTF-8)")],
    database_url: DatabaseUrl = None,
    batch: Annotated[int, typer.Option(min=1, help="Rows per transaction")] = 200,
) -> None:
    """Seed resident records from a population register CSV.

    Columns: 身份证号, name, sex, birth date, phone, address (English or Chinese headers).
    """
    store = _store(database_url)
    service = EmpiService(load_rules())
    with csv_path.open(encoding="utf-8-sig", newline="") as fh:
        total = max(sum(1 for _ in fh) - 1, 0)
    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with (
            csv_path.open(encoding="utf-8-sig", newline="") as fh,
            Progress(*columns, console=console) as bar,
        ):
            task = bar.add_task("rows", total=total)
            report = import_residents(
                store, service, read_rows(fh), batch=batch, progress=lambda n: bar.advance(task, n)
            )
    finally:
        store.close()
    console.print(f"imported {report.imported} residents, {len(report.errors)} rows refused")
    for line, message in report.errors[:50]:
        console.print(f"  line {line}: {message}")
    if report.errors:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    """Add `hie empi ...` to the `hie` command line."""
    app.add_typer(empi_app, name="empi")
