"""Building the surveillance read model up front: `hie surveillance refresh` after `hie db
upgrade`, and the `ReadModelWarmup` background service of `hie serve` (the dashboard's default
period computed once; a second refresh finds nothing to re-derive)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from ehr_store import SqlStore, StoreSettings
from hie_server.cli import app
from hie_server.surveillance import ReadModelWarmup, SurveillanceService, SurveillanceSettings
from terminology import TerminologyService

runner = CliRunner()
VISIT = {
    "resourceType": "Encounter",
    "status": "finished",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
    "subject": {"reference": "Patient/w1"},
    "period": {"start": "2026-03-02T09:00:00+08:00"},
}


def _upgraded(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'hie.db'}"
    assert runner.invoke(app, ["db", "upgrade", "--database-url", url]).exit_code == 0
    store = SqlStore(StoreSettings(database_url=url))
    try:
        with store.unit_of_work(write=True) as uow:
            uow.resources.update("Patient", "w1", {"resourceType": "Patient", "id": "w1"})
            uow.resources.update("Encounter", "w-e1", {**VISIT, "id": "w-e1"})
            uow.commit()
    finally:
        store.close()
    return url


def test_refresh_command_builds_the_read_model_once(tmp_path: Path) -> None:
    url = _upgraded(tmp_path)
    first = runner.invoke(app, ["surveillance", "refresh", "--database-url", url])
    assert first.exit_code == 0, first.output
    assert "read model: 2 rows re-derived" in first.output  # the Encounter and the Patient
    again = runner.invoke(app, ["surveillance", "refresh", "--database-url", url])
    assert "read model: 0 rows re-derived" in again.output


def test_warmup_service_prepares_in_the_background(tmp_path: Path) -> None:
    store = SqlStore(StoreSettings(database_url=_upgraded(tmp_path)))
    try:
        service = SurveillanceService(store, TerminologyService(store), SurveillanceSettings())
        warmup = ReadModelWarmup(service)

        async def run() -> None:
            await warmup.start()  # returns at once: the work runs in a thread
            assert warmup._thread is not None
            await asyncio.to_thread(warmup._thread.join, 60)
            await warmup.stop()

        asyncio.run(run())
        assert service.prepare() == 0  # built by the warm-up
        assert service._memo  # the default period's cases and ILI share are kept
    finally:
        store.close()
