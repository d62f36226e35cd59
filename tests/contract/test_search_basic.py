"""Contract: basic search on every backend (FHIR R4B search §3.1.1: token, string, reference, date,
`_id`, `_lastUpdated`), with index rows written in the same unit of work as the resource."""

from __future__ import annotations

from datetime import timedelta

from contract_data import observation, patient

from ehr_store import Store, format_instant


def _ids(store: Store, resource_type: str, params: list[tuple[str, str]]) -> set[str]:
    with store.unit_of_work() as uow:
        return {m.id for m in uow.resources.search(resource_type, params).matches}


def _load(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.resources.create(patient("王", "小明", mrn="MRN-A", gender="male"), id="pa")
        uow.resources.create(patient("李", "小红", mrn="MRN-B", gender="female",
                                     resident_id="440102198001021230"), id="pb")
        uow.resources.create(observation("Patient/pa", value="5.50", effective="2024-03-01T08:00:00+08:00"),
                             id="oa1")
        uow.resources.create(observation("Patient/pa", code="718-7", effective="2024-05-01"), id="oa2")
        uow.resources.create(observation("Patient/pb", effective="2023-12-31T10:00:00Z"), id="ob1")
        uow.commit()


def test_token(store: Store) -> None:
    _load(store)
    assert _ids(store, "Patient", [("identifier", "MRN-A")]) == {"pa"}
    assert _ids(store, "Patient", [("identifier", "urn:oid:2.16.156.10011.0.1.100|MRN-B")]) == {"pb"}
    assert _ids(store, "Patient", [("gender", "female")]) == {"pb"}
    assert _ids(store, "Observation", [("code", "http://loinc.org|2345-7")]) == {"oa1", "ob1"}


def test_string(store: Store) -> None:
    _load(store)
    assert _ids(store, "Patient", [("family", "王")]) == {"pa"}
    assert _ids(store, "Patient", [("name", "李")]) == {"pb"}


def test_reference_and_combination(store: Store) -> None:
    _load(store)
    assert _ids(store, "Observation", [("subject", "Patient/pa")]) == {"oa1", "oa2"}
    assert _ids(store, "Observation", [("subject", "Patient/pa"), ("code", "2345-7")]) == {"oa1"}
    assert _ids(store, "Observation", [("patient", "pb")]) == {"ob1"}


def test_date(store: Store) -> None:
    _load(store)
    assert _ids(store, "Observation", [("date", "ge2024-01-01")]) == {"oa1", "oa2"}
    assert _ids(store, "Observation", [("date", "2024-03")]) == {"oa1"}
    assert _ids(store, "Observation", [("date", "lt2024-01-01T00:00:00Z")]) == {"ob1"}


def test_id_and_last_updated(store: Store) -> None:
    _load(store)
    assert _ids(store, "Patient", [("_id", "pa,pb")]) == {"pa", "pb"}
    with store.unit_of_work() as uow:
        stamp = uow.resources.read("Patient", "pb").last_updated
    after = format_instant(stamp + timedelta(seconds=5))
    assert _ids(store, "Patient", [("_lastUpdated", f"lt{after}")]) == {"pa", "pb"}
    assert _ids(store, "Patient", [("_lastUpdated", f"gt{after}")]) == set()


def test_index_follows_update_delete_and_rollback(store: Store) -> None:
    _load(store)
    with store.unit_of_work() as uow:
        uow.resources.update("Patient", "pa", {**patient("赵", "小明", mrn="MRN-C"), "id": "pa"})
        uow.resources.delete("Observation", "ob1")
        assert {m.id for m in uow.resources.search("Patient", [("identifier", "MRN-C")]).matches} == {"pa"}
        uow.commit()
    assert _ids(store, "Patient", [("identifier", "MRN-A")]) == set()
    assert _ids(store, "Patient", [("family", "赵")]) == {"pa"}
    assert _ids(store, "Observation", [("subject", "Patient/pb")]) == set()
    with store.unit_of_work() as uow:
        uow.resources.create(patient("孙", "一", mrn="MRN-R"), id="rb")
        uow.resources.delete("Patient", "pb")
        uow.rollback()
    assert _ids(store, "Patient", [("identifier", "MRN-R")]) == set()
    assert _ids(store, "Patient", [("identifier", "MRN-B")]) == {"pb"}


def test_count(store: Store) -> None:
    _load(store)
    with store.unit_of_work() as uow:
        assert uow.resources.count("Observation", [("subject", "Patient/pa")]) == 2
        assert uow.resources.count("Patient", []) == 2
