"""`hie terminology load|unmapped|remap|export`: terminology content and local-code maps.

- `hie terminology load` stores the shipped content (ICD-10, LOINC subset, GB/T value
  sets, per-sender ConceptMaps); `--conceptmap FILE.csv --source FACILITY` instead loads
  one sender's mapping CSV as a new ConceptMap version.
- `hie terminology unmapped [--source FACILITY]` lists local codes seen without a mapping.
- `hie terminology remap --source FACILITY` adds standard codings to stored resources
  after mappings were added.
- `hie terminology export --source FACILITY` prints the sender's map as CSV (to edit), then
  one row with empty target columns per code the sender sent unmapped (to fill in); a sender
  without a map yet gets the header and its unmapped codes.

Wiring: `hie_server.cli` calls `cli_terminology.register(app)`.

May import: typer, rich, `ehr_store`, `terminology`, `hie_server.settings`.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ehr_store import DomainError, NotFound, Store
from hie_server.cli_common import DatabaseUrl, open_for
from hie_server.cli_common import fail as _fail
from terminology import CSV_COLUMNS, TerminologyService, rows_from_conceptmap

terminology_app = typer.Typer(no_args_is_help=True, help="Terminology (WS/T 790.9): content, local-code maps")
console = Console()

Source = Annotated[str, typer.Option("--source", help="Sending facility (MSH-4), e.g. QYRMYY")]


def _store(database_url: str | None) -> Store:
    return open_for(database_url)[1]


@terminology_app.command("load")
def load_command(
    conceptmap: Annotated[
        Path | None, typer.Option("--conceptmap", help="Mapping CSV of one sender (needs --source)")
    ] = None,
    source: Annotated[str | None, typer.Option("--source", help="Sending facility of --conceptmap")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Store the shipped terminology content, or one sender's mapping CSV as a new map version."""
    if (conceptmap is None) != (source is None):
        raise _fail("--conceptmap and --source go together")
    store = _store(database_url)
    try:
        service = TerminologyService(store)
        if conceptmap is not None and source is not None:
            try:
                text = conceptmap.read_text(encoding="utf-8-sig")
                resource, changed = service.load_conceptmap_csv(source, text)
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                raise _fail(f"{conceptmap}: {exc}") from None
            state = (
                f"version {resource['version']}" if changed else f"unchanged (version {resource['version']})"
            )
            count = len(rows_from_conceptmap(resource))
            console.print(f"ConceptMap {resource['url']}: {count} mappings, {state}")
            return
        report = service.load_content()
        console.print(
            f"terminology content: {len(report.created)} created, {len(report.updated)} updated, "
            f"{len(report.unchanged)} unchanged"
        )
    except DomainError as exc:
        raise _fail(f"load failed, nothing stored: {exc.diagnostics}") from None
    finally:
        store.close()


@terminology_app.command("unmapped")
def unmapped_command(
    source: Annotated[str | None, typer.Option("--source", help="Only this sending facility")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List local codes received without a mapping, most frequent first."""
    store = _store(database_url)
    try:
        codes = TerminologyService(store).unmapped(source)
    finally:
        store.close()
    if not codes:
        console.print("no unmapped codes")
        return
    table = Table("sender", "system", "code", "display", "count", "last seen")
    for item in codes:
        table.add_row(
            item.sender,
            item.system,
            item.code,
            item.display or "",
            str(item.count),
            item.last_seen.isoformat(timespec="seconds"),
        )
    console.print(table)
    console.print("map them in a CSV and run `hie terminology load --conceptmap FILE.csv --source SENDER`")


@terminology_app.command("remap")
def remap_command(source: Source, database_url: DatabaseUrl = None) -> None:
    """Add standard codings, by the current maps, to stored resources with the sender's local codes."""
    store = _store(database_url)
    try:
        changed = TerminologyService(store).remap(source)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    except DomainError as exc:
        raise _fail(f"remap failed, nothing changed: {exc.diagnostics}") from None
    finally:
        store.close()
    console.print(f"{len(changed)} resources updated")


@terminology_app.command("export")
def export_command(source: Source, database_url: DatabaseUrl = None) -> None:
    """Print the sender's current map as mapping CSV, then a row with empty target columns for
    each code it sent unmapped (fill them in, then `load --conceptmap`; rows left without a
    target are skipped). No map yet: the header and the unmapped codes."""
    store = _store(database_url)
    try:
        with store.unit_of_work() as uow:
            try:
                rows = rows_from_conceptmap(uow.resources.read("ConceptMap", f"local-{source}").as_dict())
            except NotFound:
                rows = []
        rows += [
            {"source_system": c.system, "source_code": c.code, "source_display": c.display or ""}
            for c in TerminologyService(store).unmapped(source)
        ]
    finally:
        store.close()
    writer = csv.DictWriter(sys.stdout, fieldnames=list(CSV_COLUMNS), restval="")
    writer.writeheader()
    writer.writerows(rows)


def register(app: typer.Typer) -> None:
    """Add `hie terminology ...` to the `hie` CLI."""
    app.add_typer(terminology_app, name="terminology")
