"""`hie imaging ...`: upload DICOM, run the bridge, list studies waiting for review, export a
de-identified study; and the imaging parts of `hie serve` (the bridge as a background service,
the DICOMweb routes).

Commands (Orthanc from `HIE_IMAGING__ORTHANC_URL`/`_USERNAME`/`_PASSWORD` or the flags):
- `hie imaging upload PATH...` — files and folders to Orthanc, with a progress bar; exit 1
  when any file was refused (each is listed with its reason).
- `hie imaging bridge [--once] [--from-now]` — follow Orthanc's `/changes` into the record
  (`--once` also withdraws the studies deleted in Orthanc, `imaging.reconcile`).
- `hie imaging review` — studies the bridge could not link to a resident with certainty.
- `hie imaging export STUDY_UID OUTDIR --salt S` — de-identified copy (PS3.15 basic profile).

Wiring: `hie_server.cli` calls `register(app)`, and `serve` adds `imaging_services(...)` and
`imaging_routers(...)` (both empty when no Orthanc is configured).

May import: typer, rich, `ehr_store`, `imaging`, `hie_server.*`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from fastapi import APIRouter
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ehr_store import DomainError, Store, json_loads
from hie_server.cli_common import DatabaseUrl, env_settings, open_for
from hie_server.cli_common import fail as _fail
from hie_server.operations.imaging import imaging_router
from hie_server.runtime import BackgroundService
from hie_server.settings import HieSettings
from imaging import (
    ImagingBridge,
    ImagingSettings,
    OrthancClient,
    UploadReport,
    dicom_files,
    export_study,
    upload_files,
)

imaging_app = typer.Typer(no_args_is_help=True, help="DICOM imaging: upload, bridge, review, export")
console = Console()
OrthancUrl = Annotated[
    str | None, typer.Option("--orthanc-url", help="Orthanc REST root (HIE_IMAGING__ORTHANC_URL)")
]


def _settings(orthanc_url: str | None) -> ImagingSettings:
    imaging = env_settings().imaging
    if orthanc_url:
        imaging = imaging.model_copy(update={"orthanc_url": orthanc_url})
    if not imaging.enabled:
        typer.secho(
            "no Orthanc configured: set HIE_IMAGING__ORTHANC_URL or --orthanc-url", err=True, fg="red"
        )
        raise typer.Exit(2)
    return imaging


def client_for(imaging: ImagingSettings) -> OrthancClient:
    """An OrthancClient from the settings (imaging must be enabled)."""
    assert imaging.orthanc_url
    password = imaging.orthanc_password.get_secret_value() if imaging.orthanc_password else None
    return OrthancClient(imaging.orthanc_url, imaging.orthanc_username, password, imaging.timeout_seconds)


def imaging_services(settings: HieSettings, store: Store) -> list[BackgroundService]:
    """The bridge as a background service of `hie serve` (none without an Orthanc)."""
    if not settings.imaging.enabled:
        return []
    return [ImagingBridge(store, client_for(settings.imaging), settings.imaging)]


def imaging_routers(settings: HieSettings, store: Store) -> list[APIRouter]:
    """The DICOMweb routes of `hie serve` (none without an Orthanc)."""
    if not settings.imaging.enabled:
        return []
    return [imaging_router(settings, store, client_for(settings.imaging))]


@imaging_app.command("upload")
def upload_command(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files or folders (searched recursively)")],
    orthanc_url: OrthancUrl = None,
) -> None:
    """Upload DICOM files to Orthanc; the bridge indexes them into the record."""
    imaging = _settings(orthanc_url)
    files = dicom_files(paths)
    if not files:
        raise _fail("no files found")

    async def run() -> UploadReport:
        columns = (TextColumn("uploading"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("upload", total=len(files))
            async with client_for(imaging) as client:
                return await upload_files(client, files, lambda _p: progress.advance(task))

    try:
        report = asyncio.run(run())
    except DomainError as exc:
        raise _fail(f"upload failed: {exc.diagnostics}") from None
    typer.echo(
        f"{report.stored} stored, {report.already} already in Orthanc, {len(report.failed)} refused; "
        f"{len(report.studies)} studies, {report.bytes / 1e6:.1f} MB"
    )
    for path, reason in report.failed:
        typer.echo(f"  refused {path}: {reason}", err=True)
    if report.failed:
        raise typer.Exit(1)


def _store(database_url: str | None) -> Store:
    return open_for(database_url)[1]


@imaging_app.command("bridge")
def bridge_command(
    once: Annotated[bool, typer.Option("--once", help="Process the feed until drained, then exit")] = False,
    from_now: Annotated[
        bool, typer.Option("--from-now", help="Skip Orthanc's history before starting")
    ] = False,
    orthanc_url: OrthancUrl = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Follow Orthanc's /changes into the record (resumable; one ImagingStudy per study)."""
    imaging = _settings(orthanc_url)
    store = _store(database_url)

    async def run() -> None:
        bridge = ImagingBridge(store, client_for(imaging), imaging)
        try:
            if from_now:
                await asyncio.to_thread(bridge.set_cursor, await bridge.client.last_change())
            if once:
                report = await bridge.run_once()
                linked, ordered = await bridge.retry_pending()
                swept = await bridge.reconcile()
                typer.echo(
                    f"{report.changes} changes, {len(report.indexed)} studies indexed, "
                    f"{len(report.review)} to review, {linked + ordered} late links, "
                    f"{len(swept.withdrawn)} deleted in Orthanc; at {report.last_seq}"
                )
                if swept.stopped:
                    typer.secho(f"reconciliation stopped: {swept.stopped}", err=True, fg="yellow")
            else:
                await bridge.run_forever()
        finally:
            await bridge.client.close()

    try:
        asyncio.run(run())
    except DomainError as exc:
        raise _fail(f"bridge stopped: {exc.diagnostics}") from None
    except KeyboardInterrupt:
        pass
    finally:
        store.close()


@imaging_app.command("review")
def review_command(database_url: DatabaseUrl = None) -> None:
    """Studies waiting to be linked to a resident (identifiers masked)."""
    store = _store(database_url)
    try:
        with store.unit_of_work() as uow:
            found = uow.resources.search(
                "Task",
                [("_tag", "urn:qyhie:imaging|link-review"), ("status", "requested"), ("_count", "200")],
            ).matches
    finally:
        store.close()
    table = Table("Task", "StudyInstanceUID", "PatientID", "issuer", "reason")
    for stored in found:
        task = json_loads(stored.content)
        inputs = {i["type"]["text"]: str(i.get("valueString", "")) for i in task.get("input", [])}
        pid = inputs.get("PatientID", "")
        masked = pid if len(pid) < 6 else f"{pid[:2]}{'*' * (len(pid) - 4)}{pid[-2:]}"
        table.add_row(
            task["id"],
            inputs.get("StudyInstanceUID", ""),
            masked,
            inputs.get("IssuerOfPatientID", ""),
            task.get("businessStatus", {}).get("text", ""),
        )
    Console().print(table)  # sized to the terminal (COLUMNS) at the time of the command
    typer.echo(f"{len(found)} studies to review")


@imaging_app.command("export")
def export_command(
    study_uid: Annotated[str, typer.Argument(help="StudyInstanceUID")],
    out_dir: Annotated[Path, typer.Argument(help="Folder for the de-identified files")],
    salt: Annotated[str, typer.Option("--salt", help="Secret for the new UIDs (same salt, same UIDs)")],
    orthanc_url: OrthancUrl = None,
) -> None:
    """De-identified copy of a study (DICOM PS3.15 basic profile, new UIDs consistently mapped)."""
    imaging = _settings(orthanc_url)

    async def run() -> list[Path]:
        async with client_for(imaging) as client:
            return await export_study(client, study_uid, out_dir, salt)

    try:
        paths = asyncio.run(run())
    except DomainError as exc:
        raise _fail(f"export failed: {exc.diagnostics}") from None
    typer.echo(f"{len(paths)} de-identified instances in {out_dir}")


def register(app: typer.Typer) -> None:
    """Add `hie imaging ...` to the `hie` command."""
    app.add_typer(imaging_app, name="imaging")
