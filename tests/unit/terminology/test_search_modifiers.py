"""Resource search with `:in` / `:not-in` / `:below` / `:above` resolved by the terminology
service over the shipped ICD-10 (memory, SQLite, PostgreSQL), and once over HTTP after
`ensure_terminology` loaded the content (FHIR R4B search §3.1.1.5.5)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ehr_store import InvalidInput, SqlStore, Store, StoreSettings
from hie_server.app import create_app
from hie_server.operations.terminology import terminology_module
from hie_server.settings import HieSettings
from hie_server.startup import ensure_terminology
from terminology import TerminologyService
from terminology.canonical import BASE, ICD10

INJURY = f"{ICD10}?fhir_vs=isa/XIX"  # chapter XIX, 1,483 codes
ALL_ICD10 = f"{BASE}/ValueSet/icd-10"  # 12,542 codes
CHINESE_ICD10 = "urn:oid:2.16.156.10011.2.3.3.11"
CONDITIONS = {
    "tb-lung": "A15.0",  # rolled-up WHO code next to a Chinese clinical code
    "tb-node": "A15.4",
    "tb-other": "A16.2",
    "fracture": "S72.0",  # chapter XIX
    "burn": "T20.1",  # chapter XIX, past the first 1,000 codes of its expansion
    "diabetes": "E11.9",
}


def _condition(id: str, code: str) -> dict[str, object]:
    return {
        "resourceType": "Condition",
        "id": id,
        "subject": {"reference": "Patient/p1"},
        "code": {
            "coding": [
                {"system": CHINESE_ICD10, "code": f"{code}00"},
                {"system": ICD10, "code": code},
            ]
        },
    }


@pytest.fixture
def loaded(store: Store) -> Iterator[Store]:
    """The store with the shipped terminology, a terminology service and six Conditions."""
    service = TerminologyService(store)
    service.load_content(senders=[])
    with store.unit_of_work(write=True) as uow:
        for id, code in CONDITIONS.items():
            uow.resources.update("Condition", id, _condition(id, code))
        uow.commit()
    yield store


def _ids(store: Store, name: str, value: str) -> set[str]:
    with store.unit_of_work() as uow:
        result = uow.resources.search("Condition", [(name, value), ("_count", "50")], strict=True)
    return {m.id for m in result.matches}


def test_code_set_modifiers_on_icd10(loaded: Store) -> None:
    """One test per backend (loading the content takes ~2 s): sets of over 1,000 codes,
    ICD-10 roll-ups below a category, block and chapter, ancestors, unknown sets."""
    assert _ids(loaded, "code:in", INJURY) == {"fracture", "burn"}
    assert _ids(loaded, "code:not-in", INJURY) == {"tb-lung", "tb-node", "tb-other", "diabetes"}
    assert _ids(loaded, "code:in", ALL_ICD10) == set(CONDITIONS)
    assert _ids(loaded, "code:not-in", ALL_ICD10) == set()

    assert _ids(loaded, "code:below", f"{ICD10}|A15") == {"tb-lung", "tb-node"}
    assert _ids(loaded, "code:below", f"{ICD10}|A15-A19") == {"tb-lung", "tb-node", "tb-other"}
    assert _ids(loaded, "code:below", f"{ICD10}|I") == {"tb-lung", "tb-node", "tb-other"}
    assert _ids(loaded, "code:below", f"{ICD10}|A15.0") == {"tb-lung"}
    assert _ids(loaded, "code:above", f"{ICD10}|A15.0") == {"tb-lung"}
    assert _ids(loaded, "code:above", f"{ICD10}|A15") == set()  # nothing coded A15 or above it

    with pytest.raises(InvalidInput) as info:
        _ids(loaded, "code:in", f"{BASE}/ValueSet/no-such-set")
    assert info.value.issues[0].expression == ("code:in",)
    with pytest.raises(InvalidInput):
        _ids(loaded, "code:below", "http://example.org/unknown-system|A15")


def test_rest_search_after_ensure_terminology(sqlite_url: str) -> None:
    store = SqlStore(StoreSettings(database_url=sqlite_url))
    try:
        service = TerminologyService(store)
        assert ensure_terminology(store, service) is not None
        with store.unit_of_work(write=True) as uow:
            for id, code in CONDITIONS.items():
                uow.resources.update("Condition", id, _condition(id, code))
            uow.commit()
        app = create_app(HieSettings(), store, modules=[terminology_module(service)])
        with TestClient(app) as client:
            found = client.get("/fhir/Condition", params={"code:in": INJURY})
            assert found.status_code == 200, found.text
            ids = {e["resource"]["id"] for e in found.json().get("entry", [])}
            assert ids == {"fracture", "burn"}
            below = client.get("/fhir/Condition", params={"code:below": f"{ICD10}|A15"})
            assert {e["resource"]["id"] for e in below.json().get("entry", [])} == {"tb-lung", "tb-node"}
            unknown = client.get("/fhir/Condition", params={"code:in": f"{BASE}/ValueSet/nope"})
            assert unknown.status_code == 400
            assert unknown.json()["issue"][0]["expression"] == ["code:in"]
    finally:
        store.close()
