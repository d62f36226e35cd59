"""Bulk export and surveillance endpoints behind authentication (local issuer, memory store):
only CDC staff and hie-admin, downloads only by who kicked the export off, county scope,
identified vs de-identified extracts by role."""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ehr_store import MemoryStore
from hie_server.app import create_app
from hie_server.auth import AuthSettings
from hie_server.bulk import BulkExporter, BulkSettings, CohortSpec, build_cohort
from hie_server.operations import surveillance as surveillance_ops
from hie_server.operations.bulk import bulk_module, file_router
from hie_server.settings import HieSettings
from hie_server.surveillance import SurveillanceService, SurveillanceSettings
from terminology import TerminologyService

_spec = importlib.util.spec_from_file_location(
    "auth_issuer", Path(__file__).resolve().parents[1] / "auth" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
auth_issuer = importlib.util.module_from_spec(_spec)
sys.modules["auth_issuer"] = auth_issuer  # dataclasses look their module up
_spec.loader.exec_module(auth_issuer)
local_issuer = auth_issuer.local_issuer

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
CITY = {
    "sub": "u-city",
    "preferred_username": "cdc.city",
    "county": "4418",
    "facility": None,
    "realm_access": {"roles": ["cdc-staff", "cdc-identified"]},
}
CITY_2 = {**CITY, "sub": "u-city-2", "preferred_username": "cdc.city2"}
FOGANG = {
    "sub": "u-fogang",
    "preferred_username": "cdc.fogang",
    "county": "441821",
    "facility": None,
    "realm_access": {"roles": ["cdc-staff"]},
}
FOGANG_ID = {**FOGANG, "sub": "u-fogang-id", "realm_access": {"roles": ["cdc-staff", "cdc-identified"]}}
DOCTOR = {
    "sub": "u-doc",
    "preferred_username": "doctor.ttwsy",
    "facility": "TTWSY",
    "county": "441821",
    "realm_access": {"roles": ["township-doctor"]},
}
NAMES = ("甲测一", "乙测二")


def seed(store: MemoryStore) -> None:
    with store.unit_of_work() as uow:
        for pid, district, name in (("p1", "441821", NAMES[0]), ("p2", "441802", NAMES[1])):
            uow.resources.update(
                "Patient",
                pid,
                {
                    "resourceType": "Patient",
                    "id": pid,
                    "name": [{"text": name}],
                    "gender": "male",
                    "birthDate": "1960-05-01",
                    "telecom": [{"system": "phone", "value": f"1380000{pid[-1]}000"}],
                    "address": [{"use": "home", "district": district, "line": ["东村", "石潭镇"]}],
                },
            )
            uow.resources.update(
                "Condition",
                f"c-{pid}",
                {
                    "resourceType": "Condition",
                    "id": f"c-{pid}",
                    "subject": {"reference": f"Patient/{pid}"},
                    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "A15.0"}]},
                    "recordedDate": "2026-09-01T08:00:00+08:00",
                },
            )
        uow.commit()


@pytest.fixture
def world(local_issuer: Any, tmp_path: Path) -> Iterator[tuple[TestClient, Any, MemoryStore]]:
    store = MemoryStore()
    terminology = TerminologyService(store)
    terminology.load_content()
    seed(store)
    settings = HieSettings(auth=AuthSettings(issuer=local_issuer.issuer, jwks_min_refresh_seconds=0))
    exporter = BulkExporter(store, BulkSettings(directory=str(tmp_path), settle_seconds=0), settings.store)
    service = SurveillanceService(store, terminology, SurveillanceSettings(pseudonym_key="k"))
    app = create_app(
        settings,
        store,
        modules=[bulk_module(exporter)],
        root_routers=[file_router(exporter, "/fhir"), surveillance_ops.build_router(service, "/fhir")],
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, local_issuer, store
    exporter.stop()
    app.state.audit_writer.close()


def call(world: Any, claims: dict[str, Any], method: str, url: str, **kw: Any) -> Any:
    client, issuer, _ = world
    headers = {"Authorization": f"Bearer {issuer.token(**claims)}", **kw.pop("headers", {})}
    return client.request(method, url, headers=headers, **kw)


def finished(world: Any, claims: dict[str, Any], location: str) -> dict[str, Any]:
    for _ in range(200):
        r = call(world, claims, "GET", location)
        if r.status_code == 200:
            return dict(r.json())
        assert r.status_code == 202, r.text
        time.sleep(0.05)
    raise AssertionError("export did not finish")


def test_downloads_only_for_who_kicked_off(world: Any) -> None:
    client, _, _ = world
    assert client.get("/fhir/$export", headers=ASYNC).status_code == 401
    refused = call(world, DOCTOR, "GET", "/fhir/$export", headers=ASYNC)
    assert refused.status_code == 403 and "cdc-extract" in refused.text
    kicked = call(world, CITY, "GET", "/fhir/$export?_type=Patient", headers=ASYNC)
    assert kicked.status_code == 202
    location = kicked.headers["Content-Location"]
    manifest = finished(world, CITY, location)
    url = manifest["output"][0]["url"]
    own = call(world, CITY, "GET", url)
    assert own.status_code == 200 and NAMES[0].encode() in own.content
    for other in (CITY_2, FOGANG_ID):
        assert call(world, other, "GET", url).status_code == 403
        assert call(world, other, "GET", location).status_code == 403
        assert call(world, other, "DELETE", location).status_code == 403
    assert call(world, DOCTOR, "GET", url).status_code == 403
    assert client.get(url).status_code == 401
    assert call(world, CITY, "DELETE", location).status_code == 202
    assert call(world, CITY, "GET", url).status_code == 404


def test_county_staff_need_identified_role_and_own_county_group(world: Any) -> None:
    _, _, store = world
    no_role = call(world, FOGANG, "GET", "/fhir/$export", headers=ASYNC)
    assert no_role.status_code == 403 and "bulk-identified" in no_role.text
    system = call(world, FOGANG_ID, "GET", "/fhir/$export", headers=ASYNC)
    assert system.status_code == 403 and "bulk-county" in system.text
    mine, other = (
        build_cohort(store, CohortSpec(county="441821")),
        build_cohort(store, CohortSpec(county="441802")),
    )
    assert call(world, FOGANG_ID, "GET", f"/fhir/Group/{other.id}/$export", headers=ASYNC).status_code == 403
    ok = call(world, FOGANG_ID, "GET", f"/fhir/Group/{mine.id}/$export?_type=Patient", headers=ASYNC)
    assert ok.status_code == 202
    manifest = finished(world, FOGANG_ID, ok.headers["Content-Location"])
    body = call(world, FOGANG_ID, "GET", manifest["output"][0]["url"]).text
    assert NAMES[0] in body and NAMES[1] not in body


def test_surveillance_extract_by_role_and_county(world: Any) -> None:
    query = "/fhir/$surveillance-cases?from=2026-09-01&to=2026-09-30"
    identified = call(world, CITY, "GET", query)
    assert identified.status_code == 200 and identified.headers["X-Identified"] == "true"
    assert identified.content.startswith(b"\xef\xbb\xbf") and all(n in identified.text for n in NAMES)
    deid = call(world, FOGANG, "GET", query + "&_format=ndjson")
    assert deid.status_code == 200 and deid.headers["X-Identified"] == "false"
    assert not any(n in deid.text for n in NAMES) and "1380000" not in deid.text and "东村" not in deid.text
    assert deid.text.count("\n") == 1 and "441821" in deid.text  # only its county
    outside = call(world, FOGANG, "GET", query + "&county=441802")
    assert outside.status_code == 403
    assert call(world, DOCTOR, "GET", query).status_code == 403
    curve = call(world, FOGANG, "GET", "/fhir/$epidemic-curve?from=2026-09-01&to=2026-09-30&_format=svg")
    assert curve.status_code == 200 and curve.headers["content-type"].startswith("image/svg+xml")
    counts = call(world, CITY, "GET", "/fhir/$surveillance-counts?from=2026-09-01&to=2026-09-30")
    assert sum(r["cases"] for r in counts.json()) == 2
    assert call(world, CITY, "GET", "/fhir/$surveillance-cases?from=bad&to=2026-09-30").status_code == 400
