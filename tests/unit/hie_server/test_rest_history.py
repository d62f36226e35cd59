"""Instance, type and system `_history` Bundles with `_since`, `_at`, `_count` and paging."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient


def _history_setup(client: TestClient, patient: Any) -> str:
    pid = client.post("/fhir/Patient", json=patient()).json()["id"]
    client.put(f"/fhir/Patient/{pid}", json=patient(id=pid, gender="male"))
    client.delete(f"/fhir/Patient/{pid}")
    return str(pid)


def test_instance_history_has_request_and_response(client: TestClient, patient: Any) -> None:
    pid = _history_setup(client, patient)
    r = client.get(f"/fhir/Patient/{pid}/_history")
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert bundle["type"] == "history"
    methods = [e["request"]["method"] for e in bundle["entry"]]
    assert methods == ["DELETE", "PUT", "POST"]
    assert [e["response"]["etag"] for e in bundle["entry"]] == ['W/"3"', 'W/"2"', 'W/"1"']
    assert "resource" not in bundle["entry"][0]
    assert bundle["entry"][1]["resource"]["gender"] == "male"
    assert bundle["entry"][2]["request"]["url"] == "Patient"
    assert bundle["entry"][2]["response"]["status"].startswith("201")


def test_history_of_unknown_instance_is_404(client: TestClient) -> None:
    r = client.get("/fhir/Patient/nobody/_history")
    assert r.status_code == 404
    assert r.json()["resourceType"] == "OperationOutcome" and r.json()["issue"][0]["code"] == "not-found"


def test_type_and_system_history_paging_followed_to_the_end(client: TestClient, patient: Any) -> None:
    for i in range(5):
        client.post("/fhir/Patient", json=patient(mrn=f"MRN-{i}"))
    client.post(
        "/fhir/Organization", json={"resourceType": "Organization", "name": "Qingyuan People's Hospital"}
    )
    seen: list[str] = []
    url: str | None = "/fhir/Patient/_history?_count=2"
    while url:
        bundle = client.get(url).json()
        assert bundle["type"] == "history"
        seen += [e["fullUrl"] for e in bundle["entry"]]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    assert len(seen) == 5 and len(set(seen)) == 5
    system = client.get("/fhir/_history?_count=50").json()
    types = {e["request"]["url"].split("/")[0] for e in system["entry"]}
    assert types == {"Patient", "Organization"}


def test_since_and_at(client: TestClient, patient: Any) -> None:
    first = client.post("/fhir/Patient", json=patient()).json()
    time.sleep(0.02)
    cut = datetime.now(UTC).isoformat()
    time.sleep(0.02)
    client.put(f"/fhir/Patient/{first['id']}", json=patient(id=first["id"], gender="male"))
    client.post("/fhir/Patient", json=patient(mrn="MRN-2"))
    since = client.get("/fhir/Patient/_history", params={"_since": cut}).json()
    assert len(since["entry"]) == 2
    at = client.get(f"/fhir/Patient/{first['id']}/_history", params={"_at": cut}).json()
    assert [e["response"]["etag"] for e in at["entry"]] == ['W/"1"']
    assert client.get("/fhir/Patient/_history?_since=yesterday").status_code == 400


def test_history_status_says_what_each_interaction_did(client: TestClient, patient: Any) -> None:
    """Update-as-create is 201 in history, like POST; PUT update 200; DELETE 204 (http §3.1.0.4.1)."""
    assert client.put("/fhir/Patient/put-made", json=patient(id="put-made")).status_code == 201
    client.put("/fhir/Patient/put-made", json=patient(id="put-made", gender="male"))
    client.delete("/fhir/Patient/put-made")
    entries = client.get("/fhir/Patient/put-made/_history").json()["entry"]
    assert [(e["request"]["method"], e["request"]["url"], e["response"]["status"]) for e in entries] == [
        ("DELETE", "Patient/put-made", "204 No Content"),
        ("PUT", "Patient/put-made", "200 OK"),
        ("PUT", "Patient/put-made", "201 Created"),
    ]
    pid = client.post("/fhir/Patient", json=patient(mrn="MRN-9")).json()["id"]
    posted = client.get(f"/fhir/Patient/{pid}/_history").json()["entry"]
    assert [(e["request"]["method"], e["response"]["status"]) for e in posted] == [("POST", "201 Created")]
