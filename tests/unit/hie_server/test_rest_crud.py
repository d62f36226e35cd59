"""read, vread, create, update, patch, delete over HTTP: headers, Prefer, conditional reads."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ehr_store import InvalidInput, json_loads

FHIR = "application/fhir+json"


def create(client: TestClient, body: dict[str, Any], **headers: str) -> Any:
    r = client.post(f"/fhir/{body['resourceType']}", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r


def test_create_assigns_id_and_sets_location_etag(client: TestClient, patient: Any) -> None:
    r = create(client, patient(id="client-chosen"))
    body = r.json()
    assert body["id"] != "client-chosen"
    assert body["meta"]["versionId"] == "1"
    assert r.headers["etag"] == 'W/"1"'
    assert r.headers["location"].endswith(f"/fhir/Patient/{body['id']}/_history/1")
    assert r.headers["location"].startswith("http://testserver/fhir/")
    assert r.headers["content-type"].startswith(FHIR)
    assert "GMT" in r.headers["last-modified"]


def test_read_serves_stored_bytes_with_exact_decimals(client: TestClient) -> None:
    raw = (
        b'{"resourceType":"Observation","status":"final","code":{"text":"Hb"},"valueQuantity":{"value":1.50}}'
    )
    r = client.post("/fhir/Observation", content=raw, headers={"content-type": FHIR})
    assert r.status_code == 201
    oid = r.json()["id"]
    read = client.get(f"/fhir/Observation/{oid}")
    assert read.status_code == 200
    assert json_loads(read.content)["valueQuantity"]["value"].as_tuple() == Decimal("1.50").as_tuple()
    assert read.headers["etag"] == 'W/"1"'


def test_update_versions_and_vread(client: TestClient, patient: Any) -> None:
    pid = create(client, patient()).json()["id"]
    r = client.put(f"/fhir/Patient/{pid}", json=patient(family="Wang", id=pid))
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == 'W/"2"'
    assert client.get(f"/fhir/Patient/{pid}").json()["name"][0]["family"] == "Wang"
    v1 = client.get(f"/fhir/Patient/{pid}/_history/1")
    assert v1.status_code == 200 and v1.json()["name"][0]["family"] == "Zhang"
    assert client.get(f"/fhir/Patient/{pid}/_history/9").status_code == 404


def test_update_as_create_gives_201_and_location(client: TestClient, patient: Any) -> None:
    r = client.put("/fhir/Patient/pat-new-1", json=patient(id="pat-new-1"))
    assert r.status_code == 201, r.text
    assert r.headers["location"].endswith("/fhir/Patient/pat-new-1/_history/1")


def test_if_match_stale_is_412_and_current_succeeds(client: TestClient, patient: Any) -> None:
    pid = create(client, patient()).json()["id"]
    ok = client.put(
        f"/fhir/Patient/{pid}", json=patient(id=pid, gender="male"), headers={"If-Match": 'W/"1"'}
    )
    assert ok.status_code == 200
    stale = client.put(
        f"/fhir/Patient/{pid}", json=patient(id=pid, gender="other"), headers={"If-Match": 'W/"1"'}
    )
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    assert client.get(f"/fhir/Patient/{pid}").json()["gender"] == "male"
    bad = client.put(f"/fhir/Patient/{pid}", json=patient(id=pid), headers={"If-Match": "yesterday"})
    assert bad.status_code == 400


def test_delete_then_read_is_410_and_history_keeps_versions(client: TestClient, patient: Any) -> None:
    pid = create(client, patient()).json()["id"]
    d = client.delete(f"/fhir/Patient/{pid}")
    assert d.status_code == 204
    gone = client.get(f"/fhir/Patient/{pid}")
    assert gone.status_code == 410
    assert gone.json()["issue"][0]["code"] == "deleted"
    assert gone.headers["etag"] == 'W/"2"'
    assert client.get(f"/fhir/Patient/{pid}/_history/1").status_code == 200
    assert client.delete("/fhir/Patient/never-was").status_code == 204


def test_if_none_match_and_if_modified_since_give_304(client: TestClient, patient: Any) -> None:
    r = create(client, patient())
    pid = r.json()["id"]
    same = client.get(f"/fhir/Patient/{pid}", headers={"If-None-Match": 'W/"1"'})
    assert same.status_code == 304 and same.content == b""
    other = client.get(f"/fhir/Patient/{pid}", headers={"If-None-Match": 'W/"7"'})
    assert other.status_code == 200
    since = client.get(f"/fhir/Patient/{pid}", headers={"If-Modified-Since": r.headers["last-modified"]})
    assert since.status_code == 304
    old = client.get(f"/fhir/Patient/{pid}", headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
    assert old.status_code == 200


def test_prefer_return_minimal_representation_outcome(client: TestClient, patient: Any) -> None:
    minimal = create(client, patient(), Prefer="return=minimal")
    assert minimal.content == b"" and minimal.headers["location"]
    rep = create(client, patient(), Prefer="return=representation")
    assert rep.json()["resourceType"] == "Patient"
    oo = create(client, patient(), Prefer="return=OperationOutcome")
    assert oo.json()["resourceType"] == "OperationOutcome"
    assert oo.json()["issue"][0]["severity"] == "information"


def test_json_patch(client: TestClient, patient: Any) -> None:
    pid = create(client, patient()).json()["id"]
    ops = [
        {"op": "replace", "path": "/gender", "value": "male"},
        {"op": "add", "path": "/active", "value": True},
    ]
    r = client.patch(
        f"/fhir/Patient/{pid}",
        content=json.dumps(ops),
        headers={"content-type": "application/json-patch+json"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["gender"] == "male" and r.json()["active"] is True
    assert r.headers["etag"] == 'W/"2"'
    newest = client.get(f"/fhir/Patient/{pid}/_history").json()["entry"][0]
    assert newest["request"] == {"method": "PATCH", "url": f"Patient/{pid}"}  # http §3.1.0.4.1
    assert newest["response"]["status"] == "200 OK" and newest["response"]["etag"] == 'W/"2"'


def test_json_patch_failures(client: TestClient, patient: Any) -> None:
    pid = create(client, patient()).json()["id"]
    hdr = {"content-type": "application/json-patch+json"}
    failed_test = [{"op": "test", "path": "/gender", "value": "male"}]
    assert (
        client.patch(f"/fhir/Patient/{pid}", content=json.dumps(failed_test), headers=hdr).status_code == 422
    )
    change_id = [{"op": "replace", "path": "/id", "value": "other"}]
    assert client.patch(f"/fhir/Patient/{pid}", content=json.dumps(change_id), headers=hdr).status_code == 400
    not_a_patch = {"op": "replace"}
    assert (
        client.patch(f"/fhir/Patient/{pid}", content=json.dumps(not_a_patch), headers=hdr).status_code == 400
    )
    wrong_type = client.patch(
        f"/fhir/Patient/{pid}", content=json.dumps(failed_test), headers={"content-type": FHIR}
    )
    assert wrong_type.status_code == 415
    assert client.get(f"/fhir/Patient/{pid}").json()["meta"]["versionId"] == "1"


def test_format_and_pretty(client: TestClient, patient: Any) -> None:
    pid = create(client, patient()).json()["id"]
    plain = client.get(f"/fhir/Patient/{pid}?_format=json&_pretty=true")
    assert plain.headers["content-type"].startswith(FHIR)
    assert plain.text.startswith('{\n  "') and '\n    "versionId": "1"' in plain.text
    assert json.loads(plain.text)["id"] == pid
    as_json = client.get(f"/fhir/Patient/{pid}", headers={"Accept": "application/json"})
    assert as_json.headers["content-type"].startswith("application/json")
    encoded = client.get(f"/fhir/Patient/{pid}?_format=application/fhir%2Bjson")
    assert encoded.status_code == 200
    browser = client.get(f"/fhir/Patient/{pid}", headers={"Accept": "text/html,*/*;q=0.8"})
    assert browser.status_code == 200


def test_read_with_summary_and_elements(client: TestClient, patient: Any) -> None:
    pid = create(client, patient(maritalStatus={"text": "married"})).json()["id"]
    summary = client.get(f"/fhir/Patient/{pid}?_summary=true").json()
    assert "maritalStatus" not in summary and summary["gender"] == "female"
    assert summary["meta"]["tag"][0]["code"] == "SUBSETTED"
    elements = client.get(f"/fhir/Patient/{pid}?_elements=name,gender").json()
    assert set(elements) == {"resourceType", "id", "meta", "name", "gender"}
    assert client.get(f"/fhir/Patient/{pid}?_summary=perhaps").status_code == 400


@pytest.mark.parametrize("dots", ["%2E", "%2E%2E", "..."])
def test_ids_made_only_of_dots_are_refused(client: TestClient, patient: Any, dots: str) -> None:
    """`Patient/..` matches the id syntax but clients normalise the URL to the base: unreachable."""
    rid = dots.replace("%2E", ".")
    put = client.put(f"/fhir/Patient/{dots}", json=patient(id=rid))
    assert put.status_code == 400, put.text
    issue = put.json()["issue"][0]
    assert repr(rid) in issue["diagnostics"] and "dots" in issue["diagnostics"]
    assert client.get(f"/fhir/Patient/{dots}").status_code == 400
    created = client.post("/fhir/Patient", json=patient(id=rid))
    assert created.status_code == 400 or created.json()["id"] != rid, created.text
    assert client.get("/fhir/Patient", params={"_id": rid}).json().get("entry", []) == []


def test_store_refuses_ids_made_only_of_dots(store: Any, patient: Any) -> None:
    with store.unit_of_work() as uow:
        with pytest.raises(InvalidInput, match="dots"):
            uow.resources.update("Patient", "..", patient(id=".."))
        with pytest.raises(InvalidInput, match="dots"):
            uow.resources.create(patient(), id=".")
