"""The EMPI operations through the FHIR REST API (FastAPI TestClient, memory store)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from ehr_store import MemoryStore, StoreSettings
from ehr_store.empi import EmpiService
from hie_server.app import create_app
from hie_server.operations.empi import empi_module
from hie_server.settings import HieSettings

from .test_linking import patient

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def client_with_patients() -> tuple[TestClient, EmpiService, MemoryStore]:
    store, svc = MemoryStore(StoreSettings(database_url="memory://")), EmpiService()
    with store.unit_of_work() as uow:
        for pid, name in (("a", "王晓东"), ("b", "王小东"), ("z", "李强")):
            doc = patient(
                name,
                "1990-01-02" if pid != "z" else "1950-06-06",
                phone="13800001234" if pid != "z" else "13800005555",
                mrn=pid.upper(),
            )
            stored, _ = uow.resources.update("Patient", pid, {**doc, "id": pid})
            svc.on_source_patient(uow.resources, stored)
            for n in range(3):
                uow.resources.create(
                    {
                        "resourceType": "Observation",
                        "status": "final",
                        "code": {"text": "bp"},
                        "subject": {"reference": f"Patient/{pid}"},
                    },
                    id=f"obs-{pid}-{n}",
                )
        uow.commit()
    settings = HieSettings(store=StoreSettings(database_url="memory://"))
    return TestClient(create_app(settings, store, modules=[empi_module(svc)])), svc, store


def test_match_everything_unlink_merge() -> None:
    client, _svc, _store = client_with_patients()
    params: dict[str, Any] = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "resource", "resource": patient("王晓东", "1990-01-02")},
            {"name": "count", "valueInteger": 5},
        ],
    }
    found = client.post("/fhir/Patient/$match", json=params, headers=FHIR_JSON)
    assert found.status_code == 200, found.text
    entry = found.json()["entry"][0]
    assert entry["search"]["extension"][0]["url"] == "http://hl7.org/fhir/StructureDefinition/match-grade"
    golden = entry["resource"]["id"]
    seen: list[str] = []
    url: str | None = f"/fhir/Patient/{golden}/$everything?_count=4"
    while url:
        page = client.get(url).json()
        seen += [e["resource"]["resourceType"] + "/" + e["resource"]["id"] for e in page["entry"]]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    assert page["total"] == 9 and len(set(seen)) == 9 and "Observation/obs-z-0" not in seen
    unlinked = client.post("/fhir/Patient/b/$unlink", headers=FHIR_JSON)
    assert unlinked.status_code == 200, unlinked.text
    new_golden = unlinked.json()["parameter"][0]["valueReference"]["reference"].split("/")[1]
    assert client.get("/fhir/Patient/a/$everything").json()["total"] == 5
    merge = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "source-patient", "valueReference": {"reference": f"Patient/{new_golden}"}},
            {"name": "target-patient", "valueReference": {"reference": "Patient/a"}},
        ],
    }
    merged = client.post("/fhir/Patient/$merge", json=merge, headers=FHIR_JSON)
    assert merged.status_code == 200, merged.text
    assert client.get("/fhir/Patient/b/$everything?_count=50").json()["total"] == 10  # + retired golden
    bad = client.post("/fhir/Patient/$merge", json=merge, headers=FHIR_JSON)
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"


def test_everything_leaves_out_audit_events_and_keeps_provenance() -> None:
    """Reads of a record write AuditEvents about it; they must not crowd out clinical data."""
    client, _svc, store = client_with_patients()
    with store.unit_of_work() as uow:
        for n in range(20):
            uow.resources.create(
                {
                    "resourceType": "AuditEvent",
                    "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110"},
                    "recorded": "2026-11-29T10:00:00+08:00",
                    "agent": [{"requestor": True, "who": {"display": "demo"}}],
                    "source": {"observer": {"display": "hie"}},
                    "entity": [{"what": {"reference": "Patient/a"}}],
                },
                id=f"audit-{n}",
            )
        uow.resources.create(
            {
                "resourceType": "Provenance",
                "target": [{"reference": "Patient/a"}],
                "recorded": "2026-11-29T10:00:00+08:00",
                "agent": [{"who": {"display": "feed"}}],
            },
            id="prov-a",
        )
        uow.commit()
    with store.unit_of_work() as uow:  # they are in the Patient compartment of Patient/a
        audits = uow.resources.search("AuditEvent", [("patient", "Patient/a"), ("_count", "50")])
        assert len(audits.matches) == 20
    page = client.get("/fhir/Patient/a/$everything?_count=20").json()
    types = [e["resource"]["resourceType"] for e in page["entry"]]
    assert "AuditEvent" not in types and "Observation" in types and "Provenance" in types, types
    assert page["total"] == 10  # a, b, golden, 6 Observations, 1 Provenance
    refused = client.get("/fhir/Patient/a/$everything?_type=Observation,AuditEvent")
    assert refused.status_code == 400 and "AuditEvent?patient=" in refused.text
    capability = client.get("/fhir/metadata").json()
    patient_type = next(r for r in capability["rest"][0]["resource"] if r["type"] == "Patient")
    op = next(o for o in patient_type["operation"] if o["name"] == "everything")
    assert "AuditEvent" in op["documentation"]


def test_match_validates_its_patient_like_a_create() -> None:
    client, _svc, _store = client_with_patients()

    def post(resource: Any, *others: Any) -> Any:
        parameters = [*others, {"name": "resource", "resource": resource}]
        body = {"resourceType": "Parameters", "parameter": parameters}
        return client.post("/fhir/Patient/$match", json=body, headers=FHIR_JSON)

    robot_patient = {"resourceType": "Patient", "gender": "robot"}
    created = client.post("/fhir/Patient", json=robot_patient, headers=FHIR_JSON)
    assert created.status_code == 400 and created.json()["issue"][0]["expression"] == ["Patient.gender"]
    robot = post(robot_patient)
    assert robot.status_code == 400, robot.text
    issue = robot.json()["issue"][0]
    assert issue["code"] == "code-invalid"
    assert issue["expression"] == ["Parameters.parameter[0].resource.gender"]
    count = {"name": "count", "valueInteger": 3}
    shifted = post({"resourceType": "Patient", "name": [{"given": "晓东"}]}, count)
    assert shifted.status_code == 400
    assert shifted.json()["issue"][0]["expression"] == ["Parameters.parameter[1].resource.name[0].given"]
    other = post({"resourceType": "Observation", "status": "final", "code": {"text": "bp"}})
    assert other.status_code == 400
    assert other.json()["issue"][0]["expression"] == ["Parameters.parameter[0].resource.resourceType"]
    good = post(patient("王晓东", "1990-01-02"))
    assert good.status_code == 200 and good.json()["entry"], good.text
