"""FHIR Bulk Data export over REST on each store backend (memory, SQLite, PostgreSQL):
kick-off, polling, manifest, `_since` with concurrent writes, `_typeFilter`, Group scope,
cancellation, expiry, gzip. The local operator (no identity provider) acts as hie-admin;
download authorisation with tokens is in test_bulk_auth.py."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from ehr_store import Store
from hie_server.app import create_app
from hie_server.bulk import BulkExporter, BulkSettings, CohortSpec, build_cohort
from hie_server.operations.bulk import bulk_module, file_router
from hie_server.settings import HieSettings

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


def patient(pid: str, district: str, gender: str = "female") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "gender": gender,
        "birthDate": "1990-01-01",
        "address": [{"use": "home", "district": district}],
    }


def observation(oid: str, pid: str, category: str = "laboratory") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "valueQuantity": {"value": 1.50, "unit": "g/L"},
    }


def seed(store: Store) -> None:
    with store.unit_of_work() as uow:
        for i in range(6):
            uow.resources.update("Patient", f"p{i}", patient(f"p{i}", "441802" if i < 3 else "441821"))
            uow.resources.update("Observation", f"o{i}", observation(f"o{i}", f"p{i}"))
            uow.resources.update("Observation", f"v{i}", observation(f"v{i}", f"p{i}", "vital-signs"))
        uow.commit()


@pytest.fixture
def world(store: Store, tmp_path: Path) -> Iterator[tuple[TestClient, BulkExporter, Store]]:
    seed(store)
    settings = HieSettings()
    exporter = BulkExporter(
        store,
        BulkSettings(directory=str(tmp_path / "bulk"), settle_seconds=0.3, page_bytes=64 * 1024),
        settings.store,
    )
    app = create_app(
        settings,
        store,
        modules=[bulk_module(exporter)],
        root_routers=[file_router(exporter, settings.http.base_path)],
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, exporter, store
    exporter.stop()


def kick(client: TestClient, url: str) -> str:
    r = client.get(url, headers=ASYNC)
    assert r.status_code == 202, r.text
    return r.headers["Content-Location"]


def wait(client: TestClient, location: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(location)
        if r.status_code == 200:
            return dict(r.json())
        assert r.status_code == 202, r.text
        assert r.headers["Retry-After"].isdigit() and r.headers["X-Progress"]
        time.sleep(0.05)
    raise AssertionError("export did not finish")


def lines(client: TestClient, manifest: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    out = []
    for item in manifest["output"]:
        if item["type"] == rtype:
            r = client.get(item["url"], headers={"Accept": "application/fhir+ndjson"})
            assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+ndjson")
            out += [orjson.loads(line) for line in r.content.splitlines()]
            assert len(r.content.splitlines()) == item["count"]
    return out


def test_kickoff_polling_manifest_and_files(world: Any) -> None:
    client, _, _ = world
    location = kick(client, "/fhir/$export?_type=Patient,Observation")
    assert "/fhir/$export-poll-status/" in location
    first = client.get(location)
    assert first.status_code == 202 and "Retry-After" in first.headers
    manifest = wait(client, location)
    assert manifest["requiresAccessToken"] is True and manifest["transactionTime"].endswith("Z")
    assert {o["type"] for o in manifest["output"]} == {"Patient", "Observation"}
    assert len(lines(client, manifest, "Patient")) == 6
    observations = lines(client, manifest, "Observation")
    assert len(observations) == 12
    raw = client.get(next(o["url"] for o in manifest["output"] if o["type"] == "Observation")).content
    assert b"1.50" in raw or b"1.5" in raw  # stored bytes as served by the store


def test_kickoff_requires_respond_async_and_checks_parameters(world: Any) -> None:
    client, _, _ = world
    assert client.get("/fhir/$export").status_code == 400
    bad = client.get("/fhir/$export?_outputFormat=text/csv", headers=ASYNC)
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/$export?_since=yesterday", headers=ASYNC).status_code == 400
    assert client.get("/fhir/$export?_typeFilter=Observation?nonsense=1", headers=ASYNC).status_code == 400
    assert client.get("/fhir/Patient/$export?_type=Organization", headers=ASYNC).status_code == 400
    assert client.get("/fhir/Group/nope/$export", headers=ASYNC).status_code == 404


def test_since_is_consistent_with_concurrent_writes(world: Any) -> None:
    client, _, store = world
    location = kick(client, "/fhir/$export?_type=Patient")
    # written after kick-off, while the job has not read yet (settle time 0.3 s)
    with store.unit_of_work() as uow:
        uow.resources.update("Patient", "p1", {**patient("p1", "441802"), "gender": "male"})
        uow.resources.create(patient("late", "441802"), id="late")
        uow.commit()
    manifest = wait(client, location)
    first = {p["id"]: p for p in lines(client, manifest, "Patient")}
    assert (
        "late" not in first and first["p1"]["gender"] == "female" and first["p1"]["meta"]["versionId"] == "1"
    )
    since = manifest["transactionTime"]
    second = wait(client, kick(client, f"/fhir/$export?_type=Patient&_since={since}"))
    changed = {p["id"]: p for p in lines(client, second, "Patient")}
    assert set(changed) == {"p1", "late"} and changed["p1"]["gender"] == "male"


def test_type_filter_and_patient_level(world: Any) -> None:
    client, _, _ = world
    url = "/fhir/Patient/$export?_type=Observation&_typeFilter=Observation%3Fcategory%3Dvital-signs"
    observations = lines(client, wait(client, kick(client, url)), "Observation")
    assert sorted(o["id"] for o in observations) == [f"v{i}" for i in range(6)]


def test_group_scope(world: Any) -> None:
    client, _, store = world
    group = build_cohort(store, CohortSpec(county="441821"))
    assert orjson.loads(group.content)["quantity"] == 3
    manifest = wait(client, kick(client, f"/fhir/Group/{group.id}/$export?_type=Patient,Observation"))
    assert sorted(p["id"] for p in lines(client, manifest, "Patient")) == ["p3", "p4", "p5"]
    assert sorted(o["subject"]["reference"] for o in lines(client, manifest, "Observation")) == [
        "Patient/p3",
        "Patient/p3",
        "Patient/p4",
        "Patient/p4",
        "Patient/p5",
        "Patient/p5",
    ]


def test_cancel_removes_job_and_files(world: Any) -> None:
    client, exporter, _ = world
    location = kick(client, "/fhir/$export?_type=Patient")
    assert client.delete(location).status_code == 202
    time.sleep(0.5)
    assert client.get(location).status_code == 404
    done = wait(client, kick(client, "/fhir/$export?_type=Patient"))
    url = done["output"][0]["url"]
    assert client.delete(kick_location(done, url)).status_code == 202
    assert client.get(url).status_code == 404
    job_id = url.split("/")[-2]
    assert not (Path(exporter.settings.directory) / job_id).exists()


def kick_location(manifest: dict[str, Any], file_url: str) -> str:
    base, _, rest = file_url.partition("/$export-file/")
    return f"{base}/$export-poll-status/{rest.split('/')[0]}"


def test_gzip_output_and_expiry(world: Any) -> None:
    client, exporter, _ = world
    manifest = wait(client, kick(client, "/fhir/$export?_type=Patient&outputCompression=gzip"))
    url = manifest["output"][0]["url"]
    assert url.endswith(".ndjson.gz")
    job_id = url.split("/")[-2]
    on_disk = Path(exporter.settings.directory) / job_id / url.split("/")[-1]
    assert len(gzip.decompress(on_disk.read_bytes()).splitlines()) == 6
    assert len(client.get(url).content.splitlines()) == 6  # Content-Encoding: gzip, decoded by the client
    exporter.jobs.update(job_id, expires_at=exporter.jobs.get(job_id).transaction_time)
    assert client.get(kick_location(manifest, url)).status_code == 404
    assert not on_disk.exists()
