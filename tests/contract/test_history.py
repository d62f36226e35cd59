"""Contract: instance, type and system history with `_since`, `_at` and paging (FHIR R4B http §3.1.0.4)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from contract_data import observation, patient

from ehr_store import NotFound, Store, json_loads


def _make_versions(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.resources.create(patient(), id="h-1")
        uow.resources.create(observation("Patient/h-1"), id="o-1")
        doc = {**patient(), "id": "h-1", "gender": "female"}
        uow.resources.update("Patient", "h-1", doc)
        uow.resources.delete("Observation", "o-1")
        uow.commit()


def test_instance_history_newest_first(store: Store) -> None:
    _make_versions(store)
    with store.unit_of_work() as uow:
        page = uow.resources.history("Patient", "h-1")
    assert [e.version_id for e in page.entries] == [2, 1]
    assert [e.method for e in page.entries] == ["PUT", "POST"]
    assert page.total == 2 and not page.has_more
    assert json_loads(page.entries[0].content)["gender"] == "female"


def test_history_of_deleted_resource_shows_deletion(store: Store) -> None:
    _make_versions(store)
    with store.unit_of_work() as uow:
        page = uow.resources.history("Observation", "o-1")
    shape = [(e.version_id, e.deleted, e.method) for e in page.entries]
    assert shape == [(2, True, "DELETE"), (1, False, "POST")]
    assert page.entries[0].content == b""


def test_instance_history_of_unknown_is_not_found(store: Store) -> None:
    with store.unit_of_work() as uow, pytest.raises(NotFound):
        uow.resources.history("Patient", "nobody")


def test_type_and_system_history(store: Store) -> None:
    _make_versions(store)
    with store.unit_of_work() as uow:
        patients = uow.resources.history("Patient")
        everything = uow.resources.history()
    assert {(e.resource_type, e.version_id) for e in patients.entries} == {("Patient", 1), ("Patient", 2)}
    assert len(everything.entries) == 4
    stamps = [e.last_updated for e in everything.entries]
    assert stamps == sorted(stamps, reverse=True)


def test_since_and_at(store: Store) -> None:
    with store.unit_of_work() as uow:
        first = uow.resources.create(patient(), id="s-1")
        uow.commit()
    time.sleep(0.01)
    with store.unit_of_work() as uow:
        second, _ = uow.resources.update("Patient", "s-1", {**patient(), "id": "s-1", "gender": "female"})
        uow.commit()
    with store.unit_of_work() as uow:
        since = uow.resources.history("Patient", "s-1", since=second.last_updated)
        just_after = first.last_updated + timedelta(microseconds=500)
        at_first = uow.resources.history("Patient", "s-1", at=just_after)
        at_before = uow.resources.history("Patient", "s-1", at=first.last_updated - timedelta(seconds=1))
        system_since = uow.resources.history(since=second.last_updated)
    assert [e.version_id for e in since.entries] == [2]
    assert [e.version_id for e in at_first.entries] == [1]
    assert at_before.entries == []
    assert [(e.id, e.version_id) for e in system_since.entries] == [("s-1", 2)]


def test_history_paging(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.resources.create(patient(), id="pg-1")
        for n in range(2, 8):
            uow.resources.update("Patient", "pg-1", {**patient(mrn=f"M{n}"), "id": "pg-1"})
        uow.commit()
    with store.unit_of_work() as uow:
        one = uow.resources.history("Patient", "pg-1", count=3)
        two = uow.resources.history("Patient", "pg-1", count=3, offset=3)
        three = uow.resources.history("Patient", "pg-1", count=3, offset=6)
        typed = uow.resources.history("Patient", count=5, offset=5)
    assert [e.version_id for e in one.entries] == [7, 6, 5] and one.has_more
    assert [e.version_id for e in two.entries] == [4, 3, 2] and two.has_more
    assert [e.version_id for e in three.entries] == [1] and not three.has_more
    assert one.total == 7 and three.total == 7
    assert [e.version_id for e in typed.entries] == [2, 1] and not typed.has_more
