"""`hie surveillance …`: notifiable-disease extracts, aggregates, charts and cohort Groups from
the command line, and the server wiring of bulk export and surveillance (`server_parts`).

- `hie surveillance extract --from 2026-09-01 --to 2026-09-30 [--county 441802] [--disease B13]
  [--format csv|ndjson] [--identified] [--shift-dates] [--out FILE]` (de-identified unless
  `--identified`; CSV is UTF-8 with BOM so Excel shows Chinese)
- `hie surveillance overdue --from … --to … [--at INSTANT]`, `counts`, `curve --out x.png|x.svg`,
  `ili`, `coverage`
- `hie surveillance reported Condition/ID --at INSTANT` (records the report Task)
- `hie surveillance cohort [--county C] [--icd10 A15] [--age-low N] [--age-high M]` (a Group
  usable as a `Group/{id}/$export` scope)

Wiring: `hie_server.cli` calls `cli_surveillance.register(app)` and `server_parts(...)` in `serve`.

May import: typer, `ehr_store`, `terminology`, `hie_server.*`.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer
from fastapi import APIRouter

from ehr_store import DomainError, Store
from hie_server.app import FhirModule
from hie_server.bulk import BulkExporter, CohortSpec, build_cohort, parse_instant
from hie_server.cli_common import DatabaseUrl, open_for
from hie_server.operations import surveillance as surveillance_ops
from hie_server.operations.bulk import bulk_module, file_router
from hie_server.runtime import BackgroundService
from hie_server.settings import HieSettings
from hie_server.surveillance import ReadModelWarmup, SurveillanceService, report_task
from terminology import TerminologyService

surveillance_app = typer.Typer(no_args_is_help=True, help="Notifiable-disease surveillance (疾控) extracts")
From = Annotated[str, typer.Option("--from", help="first diagnosis date YYYY-MM-DD")]
To = Annotated[str, typer.Option("--to", help="last diagnosis date YYYY-MM-DD")]
County = Annotated[str | None, typer.Option(help="GB/T 2260 county code (prefix), e.g. 441802")]
Disease = Annotated[str | None, typer.Option(help="disease code (B13) or name (肺结核)")]
Out = Annotated[Path | None, typer.Option("--out", help="write to FILE instead of stdout")]


class BulkExportService:
    """The bulk export worker as a runtime BackgroundService (resumes unfinished jobs)."""

    name = "bulk-export"

    def __init__(self, exporter: BulkExporter) -> None:
        self.exporter = exporter

    async def start(self) -> None:
        await asyncio.to_thread(self.exporter.start)

    async def stop(self) -> None:
        await asyncio.to_thread(self.exporter.stop)


def server_parts(
    settings: HieSettings, store: Store, terminology: TerminologyService
) -> tuple[list[FhirModule], list[APIRouter], list[BackgroundService]]:
    """Modules, root routers and background services of bulk export and surveillance for `hie serve`."""
    exporter = BulkExporter(store, settings.bulk, settings.store)
    service = SurveillanceService(store, terminology, settings.surveillance)
    routers = [
        file_router(exporter, settings.http.base_path),
        surveillance_ops.build_router(service, settings.http.base_path),
    ]
    # the surveillance routes are root routers (CSV/PNG, not FHIR JSON); the empty-router module
    # only lists their operations in the CapabilityStatement
    cdc_ops = FhirModule(APIRouter(), surveillance_ops.OPERATIONS)
    return [bulk_module(exporter), cdc_ops], routers, [BulkExportService(exporter), ReadModelWarmup(service)]


def _open(database_url: str | None) -> tuple[HieSettings, Store, SurveillanceService]:
    settings, store = open_for(database_url)
    return settings, store, SurveillanceService(store, TerminologyService(store), settings.surveillance)


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{name} must be YYYY-MM-DD") from None


def _emit(data: bytes, out: Path | None) -> None:
    if out is None:
        sys.stdout.buffer.write(data)
    else:
        out.write_bytes(data)
        typer.echo(f"wrote {out} ({len(data)} bytes)", err=True)


@surveillance_app.command("extract")
def extract(
    start: From,
    end: To,
    county: County = None,
    disease: Disease = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or ndjson")] = "csv",
    identified: Annotated[bool, typer.Option(help="include names and identifiers")] = False,
    shift_dates: Annotated[bool, typer.Option("--shift-dates", help="shift dates per person")] = False,
    out: Out = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Notifiable cases diagnosed in the period as a 传染病报告卡 extract."""
    if fmt not in ("csv", "ndjson"):
        raise typer.BadParameter("--format must be csv or ndjson")
    _, store, service = _open(database_url)
    try:
        cases = service.cases(_day(start, "--from"), _day(end, "--to"), county=county, disease=disease)
        _emit(
            service.extract(
                cases, "csv" if fmt == "csv" else "ndjson", identified=identified, shift_dates=shift_dates
            ),
            out,
        )
        typer.echo(f"{len(cases)} cases ({'identified' if identified else 'de-identified'})", err=True)
    finally:
        store.close()


@surveillance_app.command("overdue")
def overdue(
    start: From,
    end: To,
    county: County = None,
    disease: Disease = None,
    at: Annotated[str | None, typer.Option(help="as of this instant (default now)")] = None,
    out: Out = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Cases not reported within their deadline (甲类 2 h, others 24 h), de-identified NDJSON."""
    _, store, service = _open(database_url)
    try:
        now = parse_instant(at, "--at") if at else datetime.now(UTC)
        cases = service.cases(_day(start, "--from"), _day(end, "--to"), county=county, disease=disease)
        late = service.overdue(cases, now)
        _emit(service.extract(late, "ndjson", identified=False, now=now), out)
        typer.echo(f"{len(late)} of {len(cases)} cases overdue", err=True)
    finally:
        store.close()


@surveillance_app.command("counts")
def counts(
    start: From,
    end: To,
    county: County = None,
    disease: Disease = None,
    out: Out = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Case counts by ISO week × county × disease (CSV with BOM)."""
    _, store, service = _open(database_url)
    try:
        cases = service.cases(_day(start, "--from"), _day(end, "--to"), county=county, disease=disease)
        _emit(surveillance_ops.table_csv(service.counts(cases)), out)
    finally:
        store.close()


@surveillance_app.command("curve")
def curve(
    start: From,
    end: To,
    out: Annotated[Path, typer.Option("--out", help="x.png or x.svg")],
    county: County = None,
    disease: Disease = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Epidemic curve (cases per ISO week by disease) as PNG or SVG."""
    fmt = out.suffix.lstrip(".").lower()
    if fmt not in ("png", "svg"):
        raise typer.BadParameter("--out must end in .png or .svg")
    _, store, service = _open(database_url)
    try:
        cases = service.cases(_day(start, "--from"), _day(end, "--to"), county=county, disease=disease)
        _emit(service.curve(cases, fmt, f"Notifiable cases {start}..{end}"), out)
    finally:
        store.close()


@surveillance_app.command("ili")
def ili(
    start: From, end: To, county: County = None, out: Out = None, database_url: DatabaseUrl = None
) -> None:
    """ILI share of outpatient visits per ISO week and county (CSV with BOM)."""
    _, store, service = _open(database_url)
    try:
        _emit(surveillance_ops.table_csv(service.ili(_day(start, "--from"), _day(end, "--to"), county)), out)
    finally:
        store.close()


@surveillance_app.command("coverage")
def coverage(county: County = None, out: Out = None, database_url: DatabaseUrl = None) -> None:
    """Vaccination coverage per county and vaccine (CSV with BOM)."""
    _, store, service = _open(database_url)
    try:
        _emit(surveillance_ops.table_csv(service.coverage(county)), out)
    finally:
        store.close()


@surveillance_app.command("refresh")
def refresh(
    full: Annotated[bool, typer.Option("--full", help="re-check every resource by version")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Build or catch up the dashboard's read model (run once after `hie db upgrade` on a large
    database; `hie serve` also does it in the background at start)."""
    _, store, service = _open(database_url)
    try:
        typer.echo(f"read model: {service.prepare(full=full)} rows re-derived", err=True)
    finally:
        store.close()


@surveillance_app.command("reported")
def reported(
    case: Annotated[str, typer.Argument(help="Condition/ID or Observation/ID")],
    at: Annotated[str, typer.Option(help="when it was reported (instant)")],
    by: Annotated[str | None, typer.Option(help="who reported it")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Record that a case was reported to the national system (a completed Task)."""
    _, store, _ = _open(database_url)
    try:
        rtype, _, rid = case.partition("/")
        with store.unit_of_work(write=True) as uow:
            doc = orjson.loads(uow.resources.read(rtype, rid).content)
            patient = str(doc.get("subject", {}).get("reference", "")).removeprefix("Patient/")
            stored = uow.resources.create(report_task(case, patient, parse_instant(at, "--at"), by))
            uow.commit()
        typer.echo(f"Task/{stored.id}")
    except DomainError as exc:
        typer.secho(exc.diagnostics, err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    finally:
        store.close()


@surveillance_app.command("cohort")
def cohort(
    county: County = None,
    icd10: Annotated[str | None, typer.Option(help="ICD-10 prefix")] = None,
    age_low: Annotated[int | None, typer.Option("--age-low")] = None,
    age_high: Annotated[int | None, typer.Option("--age-high")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Build (or rebuild) a cohort Group for `Group/{id}/$export`."""
    _, store, _ = _open(database_url)
    try:
        stored = build_cohort(store, CohortSpec(county, icd10, age_low, age_high))
        members = orjson.loads(stored.content).get("quantity", 0)
        typer.echo(f"Group/{stored.id} version {stored.version_id}: {members} members")
    except DomainError as exc:
        typer.secho(exc.diagnostics, err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    finally:
        store.close()


def register(app: typer.Typer) -> None:
    """Add `hie surveillance` to the main command."""
    app.add_typer(surveillance_app, name="surveillance")
