"""The terminology operations over HTTP (`hie_server.operations.terminology`), GET and POST."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tparams import get, params

from ehr_store import MemoryStore
from hie_server.app import create_app
from hie_server.operations.terminology import terminology_module
from hie_server.settings import HieSettings
from terminology import TerminologyService
from terminology.canonical import BASE, ICD10, LOINC

FHIR_JSON = "application/fhir+json"


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    store = MemoryStore()
    service = TerminologyService(store)
    service.load_content(senders=["QYRMYY", "default"])
    app = create_app(HieSettings(), store, modules=[terminology_module(service)])
    with TestClient(app) as test_client:
        yield test_client
    store.close()


def test_lookup_get(client: TestClient) -> None:
    response = client.get("/fhir/CodeSystem/$lookup", params={"system": LOINC, "code": "718-7"})
    assert response.status_code == 200 and response.headers["content-type"].startswith(FHIR_JSON)
    assert get(response.json(), "display") == "Hemoglobin [Mass/volume] in Blood"


def test_lookup_unknown_code_is_404_operation_outcome(client: TestClient) -> None:
    response = client.get("/fhir/CodeSystem/$lookup", params={"system": LOINC, "code": "0000-0"})
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_subsumes_instance_level(client: TestClient) -> None:
    response = client.get("/fhir/CodeSystem/icd-10/$subsumes", params={"codeA": "I", "codeB": "A15.0"})
    assert response.status_code == 200 and get(response.json(), "outcome") == "subsumes"


def test_expand_post_parameters(client: TestClient) -> None:
    body = params(url=f"{ICD10}?fhir_vs=isa/IX", count=5, displayLanguage="zh")
    response = client.post("/fhir/ValueSet/$expand", json=body, headers={"Content-Type": FHIR_JSON})
    assert response.status_code == 200
    expansion = response.json()["expansion"]
    assert expansion["total"] > 100 and len(expansion["contains"]) == 5
    assert expansion["contains"][0] == {
        "system": ICD10,
        "version": "2019",
        "code": "IX",
        "display": "循环系统疾病",
    }


def test_expand_instance_and_validate_code(client: TestClient) -> None:
    response = client.get("/fhir/ValueSet/gb-t-3304/$expand", params={"filter": "壮"})
    assert [c["code"] for c in response.json()["expansion"]["contains"]] == ["08"]
    response = client.get(
        "/fhir/ValueSet/$validate-code",
        params={
            "url": f"{BASE}/ValueSet/gb-t-2261-1",
            "system": "urn:oid:2.16.156.10011.2.3.3.4",
            "code": "9",
        },
    )
    assert get(response.json(), "result") is True


def test_translate_post_and_bad_body(client: TestClient) -> None:
    body = params(
        url=f"{BASE}/ConceptMap/local-QYRMYY", system=f"{BASE}/CodeSystem/local/QYRMYY/L", code="PLT"
    )
    response = client.post("/fhir/ConceptMap/$translate", json=body, headers={"Content-Type": FHIR_JSON})
    assert get(response.json(), "match")["concept"]["code"] == "777-3"
    bad = client.post(
        "/fhir/ConceptMap/$translate", json={"resourceType": "Patient"}, headers={"Content-Type": FHIR_JSON}
    )
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"
