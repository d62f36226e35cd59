"""batch and transaction Bundles: urn:uuid rewriting, all-or-nothing, order, limits, outcomes."""

from __future__ import annotations

import base64
import json
from typing import Any

from fastapi.testclient import TestClient

PID = "urn:uuid:0b8e7a1c-3c1f-4f7e-9a51-2f1c6f0d9a01"
OID = "urn:uuid:0b8e7a1c-3c1f-4f7e-9a51-2f1c6f0d9a02"


def bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post(resource: dict[str, Any], full_url: str | None = None, **request: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], **request},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def observation(subject: str, value: str = "1.50") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": subject},
        "valueQuantity": {"value": float(value), "unit": "g/dL"},
    }


def test_transaction_rewrites_urn_uuid_references(client: TestClient, patient: Any) -> None:
    tx = bundle("transaction", post(observation(PID), OID), post(patient(), PID))
    r = client.post("/fhir", json=tx)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["type"] == "transaction-response"
    obs_entry, pat_entry = out["entry"]
    assert obs_entry["response"]["status"].startswith("201")
    patient_ref = pat_entry["response"]["location"].split("/fhir/")[1].split("/_history")[0]
    obs_ref = obs_entry["response"]["location"].split("/fhir/")[1].split("/_history")[0]
    stored = client.get(f"/fhir/{obs_ref}").json()
    assert stored["subject"]["reference"] == patient_ref
    assert client.get(f"/fhir/{patient_ref}").status_code == 200


def test_transaction_is_all_or_nothing(client: TestClient, patient: Any) -> None:
    before = client.get("/fhir/Patient/_history").json().get("entry", [])
    bad = {"resourceType": "Patient", "birthDate": "not-a-date"}
    r = client.post("/fhir", json=bundle("transaction", post(patient(), PID), post(bad)))
    assert r.status_code == 400
    assert "Bundle.entry[1]" in r.json()["issue"][0]["diagnostics"]
    assert r.json()["issue"][0]["expression"] == ["Bundle.entry[1].resource.birthDate"]  # in the Bundle
    after = client.get("/fhir/Patient/_history").json().get("entry", [])
    assert after == before


def test_transaction_rolls_back_on_stale_if_match(client: TestClient, patient: Any) -> None:
    pid = client.post("/fhir/Patient", json=patient()).json()["id"]
    put = {
        "resource": patient(id=pid, gender="male"),
        "request": {"method": "PUT", "url": f"Patient/{pid}", "ifMatch": 'W/"9"'},
    }
    r = client.post("/fhir", json=bundle("transaction", post(patient(mrn="MRN-77")), put))
    assert r.status_code == 412
    assert len(client.get("/fhir/Patient/_history").json()["entry"]) == 1


def test_transaction_order_delete_post_put_get(client: TestClient, patient: Any) -> None:
    pid = client.post("/fhir/Patient", json=patient()).json()["id"]
    entries = [
        {"request": {"method": "GET", "url": "Patient/p-put"}},
        {
            "resource": patient(id="p-put", gender="male"),
            "request": {"method": "PUT", "url": "Patient/p-put"},
        },
        post(patient(mrn="MRN-9")),
        {"request": {"method": "DELETE", "url": f"Patient/{pid}"}},
    ]
    r = client.post("/fhir", json=bundle("transaction", *entries))
    assert r.status_code == 200, r.text
    read, put, created, deleted = r.json()["entry"]
    assert read["resource"]["gender"] == "male"
    assert put["response"]["status"].startswith("201")
    assert created["response"]["status"].startswith("201")
    assert deleted["response"]["status"].startswith("204")
    assert client.get(f"/fhir/Patient/{pid}").status_code == 410


def test_transaction_patch_entry(client: TestClient, patient: Any) -> None:
    pid = client.post("/fhir/Patient", json=patient()).json()["id"]
    ops = json.dumps([{"op": "replace", "path": "/gender", "value": "male"}]).encode()
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(ops).decode(),
    }
    r = client.post(
        "/fhir",
        json=bundle(
            "transaction", {"resource": binary, "request": {"method": "PATCH", "url": f"Patient/{pid}"}}
        ),
    )
    assert r.status_code == 200, r.text
    assert client.get(f"/fhir/Patient/{pid}").json()["gender"] == "male"
    newest = client.get(f"/fhir/Patient/{pid}/_history").json()["entry"][0]
    assert (newest["request"]["method"], newest["response"]["status"]) == ("PATCH", "200 OK")


def test_entry_limit_is_400(client: TestClient, patient: Any, settings: Any) -> None:
    entries = [post(patient(mrn=f"MRN-{i}")) for i in range(settings.http.max_bundle_entries + 1)]
    r = client.post("/fhir", json=bundle("transaction", *entries))
    assert r.status_code == 400
    assert r.json()["issue"][0]["code"] == "too-costly"
    assert client.get("/fhir/Patient/_history").json().get("entry", []) == []


def test_batch_reports_each_entry(client: TestClient, patient: Any) -> None:
    entries = [
        post(patient()),
        post({"resourceType": "Patient", "birthDate": "1980-99-99"}),
        {"request": {"method": "GET", "url": "Patient/missing"}},
        {"request": {"method": "GET", "url": "Spaceship/1"}},
    ]
    r = client.post("/fhir", json=bundle("batch", *entries))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["type"] == "batch-response"
    statuses = [e["response"]["status"].split()[0] for e in out["entry"]]
    assert statuses == ["201", "400", "404", "404"]
    assert out["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert client.get(out["entry"][0]["response"]["location"].split("testserver")[1]).status_code == 200


def test_prefer_minimal_leaves_resources_out(client: TestClient, patient: Any) -> None:
    r = client.post(
        "/fhir", json=bundle("transaction", post(patient())), headers={"Prefer": "return=minimal"}
    )
    assert r.status_code == 200
    assert "resource" not in r.json()["entry"][0]


def test_bad_bundles_are_400(client: TestClient, patient: Any) -> None:
    assert client.post("/fhir", json=patient()).status_code == 400
    assert client.post("/fhir", json=bundle("collection")).status_code == 400
    no_request = {"resource": patient()}
    assert client.post("/fhir", json=bundle("transaction", no_request)).status_code == 400
    dangling = post(observation("urn:uuid:11111111-2222-3333-4444-555555555555"))
    assert client.post("/fhir", json=bundle("transaction", dangling)).status_code == 400
    twice = {"resource": patient(id="dup"), "request": {"method": "PUT", "url": "Patient/dup"}}
    assert client.post("/fhir", json=bundle("transaction", twice, twice)).status_code == 400


def test_transaction_conditional_create_and_conditional_reference(client: TestClient, patient: Any) -> None:
    existing = client.post("/fhir/Patient", json=patient(mrn="MRN-500")).json()["id"]
    entries = [
        post(patient(mrn="MRN-500"), PID, ifNoneExist="identifier=urn:oid:1.2.156.112604.1.1|MRN-500"),
        post(observation(PID), OID),
        post(observation("Patient?identifier=MRN-500", "2.0")),
    ]
    r = client.post("/fhir", json=bundle("transaction", *entries))
    assert r.status_code == 200, r.text
    first, obs1, obs2 = r.json()["entry"]
    assert first["response"]["status"].startswith("200")
    for entry in (obs1, obs2):
        ref = entry["response"]["location"].split("/fhir/")[1].split("/_history")[0]
        assert client.get(f"/fhir/{ref}").json()["subject"]["reference"] == f"Patient/{existing}"


def test_conditional_reference_matching_nothing_fails_the_transaction(client: TestClient) -> None:
    r = client.post("/fhir", json=bundle("transaction", post(observation("Patient?identifier=NOBODY"))))
    assert r.status_code == 412
    assert r.json()["resourceType"] == "OperationOutcome" and r.json()["issue"][0]["severity"] == "error"
    assert (
        client.get("/fhir/Observation", params={"_summary": "count"}).json()["total"] == 0
    )  # nothing written


def test_transaction_conditional_update_and_delete(client: TestClient, patient: Any) -> None:
    keep = client.post("/fhir/Patient", json=patient(mrn="MRN-U")).json()["id"]
    drop = client.post("/fhir/Patient", json=patient(mrn="MRN-D")).json()["id"]
    entries = [
        {
            "resource": patient(mrn="MRN-U", gender="male"),
            "request": {"method": "PUT", "url": "Patient?identifier=MRN-U"},
        },
        {"request": {"method": "DELETE", "url": "Patient?identifier=MRN-D"}},
        {"resource": patient(mrn="MRN-N"), "request": {"method": "PUT", "url": "Patient?identifier=MRN-N"}},
    ]
    r = client.post("/fhir", json=bundle("transaction", *entries))
    assert r.status_code == 200, r.text
    updated, deleted, created = r.json()["entry"]
    assert updated["response"]["status"].startswith("200")
    assert deleted["response"]["status"].startswith("204")
    assert created["response"]["status"].startswith("201")
    assert client.get(f"/fhir/Patient/{keep}").json()["gender"] == "male"
    assert client.get(f"/fhir/Patient/{drop}").status_code == 410


def test_batch_survives_a_bad_criterion(client: TestClient, patient: Any) -> None:
    entries = [
        post(patient(mrn="MRN-B1"), ifNoneExist="favourite-colour=blue"),
        post(patient(mrn="MRN-B2")),
    ]
    r = client.post("/fhir", json=bundle("batch", *entries))
    assert r.status_code == 200, r.text
    statuses = [e["response"]["status"].split()[0] for e in r.json()["entry"]]
    assert statuses == ["400", "201"]


def test_transaction_search_entry_returns_a_searchset(client: TestClient, patient: Any) -> None:
    client.post("/fhir/Patient", json=patient(mrn="MRN-S"))
    r = client.post(
        "/fhir", json=bundle("transaction", {"request": {"method": "GET", "url": "Patient?identifier=MRN-S"}})
    )
    assert r.status_code == 200, r.text
    found = r.json()["entry"][0]["resource"]
    assert found["type"] == "searchset" and len(found["entry"]) == 1


def test_transaction_reads_see_writes_and_a_missing_read_fails_it(client: TestClient, patient: Any) -> None:
    pid = client.post("/fhir/Patient", json=patient()).json()["id"]
    reads = [{"request": {"method": "GET", "url": f"Patient/{pid}"}}, post(patient(mrn="MRN-R"), PID)]
    r = client.post("/fhir", json=bundle("transaction", *reads), headers={"Prefer": "return=minimal"})
    assert r.status_code == 200, r.text
    assert r.json()["entry"][0]["resource"]["id"] == pid
    assert "resource" not in r.json()["entry"][1]
    missing = [post(patient(mrn="MRN-M")), {"request": {"method": "GET", "url": "Patient/not-there"}}]
    failed = client.post("/fhir", json=bundle("transaction", *missing))
    assert failed.status_code == 404
    assert "Bundle.entry[1]" in failed.json()["issue"][0]["diagnostics"]
    assert client.get("/fhir/Patient?identifier=MRN-M").json().get("entry", []) == []


def test_transaction_refuses_repeated_or_malformed_full_urls(client: TestClient, patient: Any) -> None:
    before = client.get("/fhir/Patient/_history").json().get("entry", [])
    twice = client.post("/fhir", json=bundle("transaction", post(patient(), PID), post(patient(), PID)))
    assert twice.status_code == 400
    issue = twice.json()["issue"][0]
    assert "bdl-7" in issue["diagnostics"] and issue["expression"] == ["Bundle.entry[1].fullUrl"]
    malformed = client.post("/fhir", json=bundle("transaction", post(patient(), "urn:uuid:not-a-uuid")))
    assert malformed.status_code == 400
    assert malformed.json()["issue"][0]["expression"] == ["Bundle.entry[0].fullUrl"]
    assert client.get("/fhir/Patient/_history").json().get("entry", []) == before


def test_bundle_posted_to_the_base_with_a_trailing_slash(client: TestClient, patient: Any) -> None:
    """`POST [base]/` is the transaction/batch interaction as `POST [base]` (FHIR R4B http
    §3.1.0.11), answered at once: no redirect with an empty body (a client may not re-post)."""
    r = client.post("/fhir/", json=bundle("transaction", post(patient(), PID)), follow_redirects=False)
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "transaction-response"
    assert r.json()["entry"][0]["response"]["status"].startswith("201")
    batch = client.post("/fhir/", json=bundle("batch", post(patient(mrn="MRN-2"))), follow_redirects=False)
    assert batch.status_code == 200 and batch.json()["type"] == "batch-response"
    assert len(client.get("/fhir/Patient").json()["entry"]) == 2
    put = client.put("/fhir/", json=bundle("transaction"), follow_redirects=False)
    assert put.status_code == 405 and put.json()["resourceType"] == "OperationOutcome"
