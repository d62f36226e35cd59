"""A resident record (golden Patient) cannot be deleted through the generic FHIR API:
instance DELETE, conditional DELETE and a transaction Bundle DELETE answer 409 with an
OperationOutcome pointing to $unlink/$merge, and nothing is deleted."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from ehr_store import Conflict, Store, conditional_delete
from ehr_store.empi import EmpiService, refuse_golden_delete, refuse_golden_deleted

from .test_linking import patient
from .test_rest_operations import FHIR_JSON, client_with_patients
from .test_store_backends import ingest, refer


def golden_of(client: TestClient, pid: str) -> str:
    links = client.get(f"/fhir/Patient/{pid}").json()["link"]
    return str(next(link["other"]["reference"] for link in links if link["type"] == "refer")).split("/")[1]


def assert_refused(response: Response, golden: str, client: TestClient) -> None:
    assert response.status_code == 409, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    text = outcome["issue"][0]["diagnostics"]
    assert outcome["issue"][0]["code"] == "conflict" and "$unlink" in text and "$merge" in text
    assert client.get(f"/fhir/Patient/{golden}").status_code == 200


def test_delete_of_golden_patient_is_refused() -> None:
    client, _svc, _store = client_with_patients()
    golden = golden_of(client, "a")
    assert_refused(client.delete(f"/fhir/Patient/{golden}"), golden, client)
    assert_refused(client.delete("/fhir/Patient", params={"_id": golden}), golden, client)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": f"Patient/{golden}"}}],
    }
    assert_refused(client.post("/fhir", json=bundle, headers=FHIR_JSON), golden, client)
    assert golden_of(client, "a") == golden


def test_source_patients_and_other_resources_still_delete() -> None:
    client, _svc, _store = client_with_patients()
    assert client.delete("/fhir/Observation/obs-z-0").status_code == 204
    assert client.delete("/fhir/Patient/z").status_code == 204
    assert client.get("/fhir/Patient/z").status_code == 410
    assert client.delete("/fhir/Patient/never-was").status_code == 204


def test_guard_on_every_backend(store: Store) -> None:
    """Conditional delete finds the golden Patient, deletes it in the unit of work, and the
    guard raises before commit: on memory, SQLite and PostgreSQL nothing is deleted."""
    svc = EmpiService()
    ingest(store, svc, "a", patient("王晓东", "1990-01-02", mrn="A1"))
    golden = refer(store, "a")
    with store.unit_of_work(write=True) as uow, pytest.raises(Conflict):
        refuse_golden_delete(uow.resources, "Patient", golden)
    with pytest.raises(Conflict), store.unit_of_work(write=True) as uow:
        deleted = conditional_delete(uow.resources, "Patient", [("_id", golden)])
        assert [d.id for d in deleted] == [golden]
        refuse_golden_deleted(uow.resources, deleted)
        uow.commit()
    with store.unit_of_work() as uow:
        assert not uow.resources.read("Patient", golden).deleted
        refuse_golden_delete(uow.resources, "Patient", "a")  # a source Patient: allowed
