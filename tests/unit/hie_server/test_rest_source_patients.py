"""Source Patients written through the REST API are linked by the EMPI as HL7-borne ones are
(`hie_server.source_patients`, wired by `create_app(identity=...)` as `hie serve` does)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ehr_store import Store
from ehr_store.empi import EmpiService
from ehr_store.empi.golden import link_targets
from ehr_store.resident_id import check_character
from hie_server.app import create_app
from hie_server.settings import HieSettings

RID = "44180219850714002"
RESIDENT_ID = RID + check_character(RID)
RESIDENT_SYSTEM = "urn:oid:2.16.156.10011.1.3"


@pytest.fixture
def linked(store: Store, settings: HieSettings) -> Iterator[TestClient]:
    app = create_app(settings, store, identity=EmpiService())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def source(mrn: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": f"urn:qyhie:mrn:{mrn[:2]}", "value": mrn},
                       {"system": RESIDENT_SYSTEM, "value": RESIDENT_ID}],
        "name": [{"family": "张", "given": ["伟"]}],
        "gender": "male",
        "birthDate": "1985-07-14",
        **extra,
    }


def test_created_and_updated_source_patients_join_one_resident(linked: TestClient) -> None:
    first = linked.post("/fhir/Patient", json=source("QY001"))
    assert first.status_code == 201
    body = first.json()
    [golden] = link_targets(body, "refer")
    assert body["meta"]["versionId"] == "1"  # written once, with its link
    second = linked.put("/fhir/Patient/lz-77", json={**source("LZ077"), "id": "lz-77"})
    assert second.status_code == 201 and link_targets(second.json(), "refer") == [golden]
    resident = linked.get(f"/fhir/Patient/{golden}").json()
    assert sorted(link_targets(resident, "seealso")) == sorted([body["id"], "lz-77"])
    # an update that leaves the link out keeps it; If-Match is honoured
    stale = linked.put("/fhir/Patient/lz-77", json={**source("LZ077"), "id": "lz-77"},
                       headers={"If-Match": 'W/"9"'})
    assert stale.status_code == 412
    phone = [{"system": "phone", "value": "13800005678"}]
    moved = linked.put("/fhir/Patient/lz-77", headers={"If-Match": 'W/"1"'},
                       json={**source("LZ077", telecom=phone), "id": "lz-77"})
    assert moved.status_code == 200 and link_targets(moved.json(), "refer") == [golden]
    assert moved.json()["meta"]["versionId"] == "2"
    patched = linked.patch("/fhir/Patient/lz-77", headers={"content-type": "application/json-patch+json"},
                           content=b'[{"op": "replace", "path": "/gender", "value": "female"}]')
    assert patched.status_code == 200 and link_targets(patched.json(), "refer") == [golden]
    newest = linked.get("/fhir/Patient/lz-77/_history").json()["entry"][0]
    assert (newest["request"]["method"], newest["response"]["etag"]) == ("PATCH", 'W/"3"')


def test_invalid_patients_are_refused_before_matching(linked: TestClient) -> None:
    bad = linked.post("/fhir/Patient", json=source("QY002", gender="robot"))
    assert bad.status_code == 400
    assert bad.json()["issue"][0]["expression"] == ["Patient.gender"]
    broken = linked.post("/fhir/Patient", json=source("QY003", name="张伟"))
    assert broken.status_code == 400
    assert linked.get("/fhir/Patient").json().get("total", 0) == 0  # nothing written


def test_a_transaction_bundle_links_its_patient(linked: TestClient) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:5b1f7c3e-0000-4000-8000-000000000001", "resource": source("QY004"),
         "request": {"method": "POST", "url": "Patient"}},
    ]}
    answer = linked.post("/fhir", json=bundle)
    assert answer.status_code == 200
    location = answer.json()["entry"][0]["response"]["location"]
    pid = location.split("Patient/")[1].split("/")[0]
    assert link_targets(linked.get(f"/fhir/Patient/{pid}").json(), "refer")


def test_without_an_empi_patients_are_stored_as_sent(client: TestClient) -> None:
    created = client.post("/fhir/Patient", json=source("QY005"))
    assert created.status_code == 201 and "link" not in created.json()
