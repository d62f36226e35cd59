"""Contract: a unit of work commits everything together or nothing."""

from __future__ import annotations

import pytest
from contract_data import patient

from ehr_store import InvalidInput, NotFound, Store


def test_rollback_leaves_nothing(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.resources.create(patient(), id="kept")
        uow.commit()
    with store.unit_of_work() as uow:
        uow.resources.create(patient(), id="rolled-back")
        uow.resources.update("Patient", "kept", {**patient(), "id": "kept", "gender": "female"})
        uow.resources.delete("Patient", "kept")
        uow.messages.add(b"MSH|^~\\&|A|F", transport="mllp", peer=None, sending_application="A",
                         sending_facility="F", control_id="c1", message_type="ADT^A01", charset=None)
        uow.rollback()
    with store.unit_of_work() as uow:
        with pytest.raises(NotFound):
            uow.resources.read("Patient", "rolled-back")
        with pytest.raises(NotFound):
            uow.resources.history("Patient", "rolled-back")
        kept = uow.resources.read("Patient", "kept")
        assert kept.version_id == 1
        assert uow.resources.history("Patient", "kept").total == 1
        assert uow.messages.list() == []


def test_exit_without_commit_rolls_back(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.resources.create(patient(), id="uncommitted")
    with store.unit_of_work() as uow, pytest.raises(NotFound):
        uow.resources.read("Patient", "uncommitted")


def test_error_midway_loses_the_whole_unit(store: Store) -> None:
    with pytest.raises(InvalidInput), store.unit_of_work() as uow:
        uow.resources.create(patient(), id="first")
        uow.resources.create({**patient(), "birthDate": "not-a-date"}, id="second")
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.resources.read_many([("Patient", "first"), ("Patient", "second")]) == {}


def test_commit_then_more_work_in_the_same_unit(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.resources.create(patient(), id="a1")
        uow.commit()
        uow.resources.create(patient(), id="a2")
        uow.rollback()
    with store.unit_of_work() as uow:
        assert set(uow.resources.read_many([("Patient", "a1"), ("Patient", "a2")])) == {("Patient", "a1")}
