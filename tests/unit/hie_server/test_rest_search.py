"""Search over HTTP: searchset Bundles, paging links followed to the end, _summary, _elements,
_total, POST _search, system search, lenient/strict handling, conditional interactions."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi.testclient import TestClient

SYSTEM = "urn:oid:1.2.156.112604.1.1"


def _load(client: TestClient, patient: Any, n: int) -> list[str]:
    return [client.post("/fhir/Patient", json=patient(mrn=f"MRN-{i}")).json()["id"] for i in range(n)]


def _relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_search_by_identifier_gives_searchset(client: TestClient, patient: Any) -> None:
    ids = _load(client, patient, 3)
    r = client.get("/fhir/Patient", params={"identifier": f"{SYSTEM}|MRN-1"})
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert bundle["type"] == "searchset"
    assert [e["resource"]["id"] for e in bundle["entry"]] == [ids[1]]
    assert bundle["entry"][0]["search"]["mode"] == "match"
    assert bundle["entry"][0]["fullUrl"] == f"http://testserver/fhir/Patient/{ids[1]}"
    assert bundle["link"][0]["relation"] == "self"


def test_paging_links_followed_until_exhausted(client: TestClient, patient: Any) -> None:
    ids = set(_load(client, patient, 7))
    seen: list[str] = []
    url: str | None = "/fhir/Patient?_count=3&gender=female"
    pages = 0
    while url:
        bundle = client.get(url).json()
        pages += 1
        seen += [e["resource"]["id"] for e in bundle["entry"]]
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert "first" in links and "self" in links
        if pages > 1:
            assert "previous" in links
        url = _relative(links["next"]) if "next" in links else None
    assert pages == 3
    assert len(seen) == 7 and set(seen) == ids


def test_page_size_is_capped(client: TestClient, patient: Any, settings: Any) -> None:
    _load(client, patient, 2)
    bundle = client.get("/fhir/Patient?_count=100000").json()
    self_link = next(link["url"] for link in bundle["link"] if link["relation"] == "self")
    assert f"_count={settings.http.max_page_size}" in self_link
    assert client.get("/fhir/Patient?_count=lots").status_code == 400


def test_summary_count_and_total(client: TestClient, patient: Any) -> None:
    _load(client, patient, 4)
    counted = client.get("/fhir/Patient?_summary=count").json()
    assert counted["total"] == 4 and counted.get("entry", []) == []
    accurate = client.get("/fhir/Patient?_total=accurate&_count=1").json()
    assert accurate["total"] == 4 and len(accurate["entry"]) == 1
    assert client.get("/fhir/Patient?_summary=maybe").status_code == 400


def test_summary_true_and_elements_subset(client: TestClient, patient: Any) -> None:
    _load(client, patient, 1)
    text = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Zhang Wei</div>'}
    client.post("/fhir/Patient", json=patient(mrn="MRN-T", text=text, maritalStatus={"text": "married"}))
    summary = client.get("/fhir/Patient?identifier=MRN-T&_summary=true").json()["entry"][0]["resource"]
    assert "maritalStatus" not in summary and "text" not in summary
    assert summary["birthDate"] == "1980-05-01"
    assert any(t["code"] == "SUBSETTED" for t in summary["meta"]["tag"])
    data = client.get("/fhir/Patient?identifier=MRN-T&_summary=data").json()["entry"][0]["resource"]
    assert "text" not in data and "maritalStatus" in data
    elements = client.get("/fhir/Patient?identifier=MRN-T&_elements=gender").json()["entry"][0]["resource"]
    assert set(elements) == {"resourceType", "id", "meta", "gender"}


def test_post_search_and_system_search(client: TestClient, patient: Any) -> None:
    ids = _load(client, patient, 2)
    client.post("/fhir/Organization", json={"resourceType": "Organization", "name": "Qingyuan No.1 Hospital"})
    r = client.post(
        "/fhir/Patient/_search",
        content=f"identifier={SYSTEM}|MRN-0",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200, r.text
    assert [e["resource"]["id"] for e in r.json()["entry"]] == [ids[0]]
    system = client.get("/fhir?_type=Organization").json()
    assert {e["resource"]["resourceType"] for e in system["entry"]} == {"Organization"}


def test_unknown_parameter_lenient_warns_strict_refuses(client: TestClient, patient: Any) -> None:
    _load(client, patient, 1)
    lenient = client.get("/fhir/Patient?favourite-colour=blue").json()
    outcomes = [e for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    assert outcomes and outcomes[0]["resource"]["resourceType"] == "OperationOutcome"
    assert outcomes[0]["resource"]["issue"][0]["severity"] == "warning"
    strict = client.get("/fhir/Patient?favourite-colour=blue", headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400


def test_conditional_create_update_delete(client: TestClient, patient: Any) -> None:
    crit = f"identifier={SYSTEM}|MRN-CC"
    first = client.post("/fhir/Patient", json=patient(mrn="MRN-CC"), headers={"If-None-Exist": crit})
    assert first.status_code == 201
    again = client.post("/fhir/Patient", json=patient(mrn="MRN-CC"), headers={"If-None-Exist": crit})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    updated = client.put(f"/fhir/Patient?{crit}", json=patient(mrn="MRN-CC", gender="male"))
    assert updated.status_code == 200 and updated.json()["id"] == first.json()["id"]
    created = client.put(f"/fhir/Patient?identifier={SYSTEM}|MRN-NEW", json=patient(mrn="MRN-NEW"))
    assert created.status_code == 201
    client.post("/fhir/Patient", json=patient(mrn="MRN-DUP"))
    client.post("/fhir/Patient", json=patient(mrn="MRN-DUP"))
    many = client.post(
        "/fhir/Patient", json=patient(mrn="MRN-DUP"), headers={"If-None-Exist": "identifier=MRN-DUP"}
    )
    assert many.status_code == 412
    assert client.delete("/fhir/Patient?identifier=MRN-DUP").status_code == 412
    assert client.delete(f"/fhir/Patient?{crit}").status_code == 204
    assert client.get(f"/fhir/Patient/{first.json()['id']}").status_code == 410
    assert client.delete("/fhir/Patient?favourite-colour=blue").status_code == 400


def test_include_entries_have_mode_include(client: TestClient, patient: Any) -> None:
    pid = client.post("/fhir/Patient", json=patient(mrn="MRN-I")).json()["id"]
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "valueQuantity": {"value": 13.5, "unit": "g/dL"},
    }
    client.post("/fhir/Observation", json=obs)
    bundle = client.get(f"/fhir/Observation?subject=Patient/{pid}&_include=Observation:subject").json()
    modes = sorted((e["search"]["mode"], e["resource"]["resourceType"]) for e in bundle["entry"])
    assert modes == [("include", "Patient"), ("match", "Observation")]


def test_summary_text(client: TestClient, patient: Any) -> None:
    text = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Zhang Wei</div>'}
    client.post("/fhir/Patient", json=patient(mrn="MRN-X", text=text))
    found = client.get("/fhir/Patient?identifier=MRN-X&_summary=text").json()["entry"][0]["resource"]
    assert set(found) == {"resourceType", "id", "meta", "text"}


def test_system_search_by_post(client: TestClient, patient: Any) -> None:
    client.post("/fhir/Patient", json=patient(mrn="MRN-P"))
    form = {"content-type": "application/x-www-form-urlencoded"}
    r = client.post("/fhir/_search", content="_type=Patient&identifier=MRN-P", headers=form)
    assert r.status_code == 200, r.text
    assert [e["resource"]["resourceType"] for e in r.json()["entry"]] == ["Patient"]
    assert (
        client.post(
            "/fhir/Patient/_search", content=b"{}", headers={"content-type": "application/fhir+json"}
        ).status_code
        == 415
    )


def test_system_search_at_the_base_with_a_trailing_slash(client: TestClient, patient: Any) -> None:
    """`GET [base]/` is search-system as `GET [base]` (FHIR R4B http §3.1.0.8), not a redirect."""
    client.post("/fhir/Patient", json=patient(mrn="MRN-S"))
    r = client.get("/fhir/", params={"_type": "Patient", "identifier": "MRN-S"}, follow_redirects=False)
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "searchset" and len(r.json()["entry"]) == 1
    assert client.get("/fhir/Patient/", follow_redirects=False).status_code == 307  # other routes as before


def test_empty_searchset_has_no_empty_entry_array(client: TestClient) -> None:
    bundle = client.get("/fhir/Patient?identifier=NOBODY").json()
    assert bundle["type"] == "searchset" and "entry" not in bundle
    empty_tx = client.post("/fhir", json={"resourceType": "Bundle", "type": "transaction"}).json()
    assert empty_tx["type"] == "transaction-response" and "entry" not in empty_tx


def test_huge_or_non_ascii_paging_numbers_are_400(client: TestClient) -> None:
    for query in ("_offset=999999999999999999999", "_count=99999999999999999999", "_offset=²"):
        response = client.get(f"/fhir/Observation?{query}")
        assert response.status_code == 400, (query, response.text)
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["expression"][0] in ("_offset", "_count")
