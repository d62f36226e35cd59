"""Contract: a unit of work commits everything together or nothing."""

from __future__ import annotations

import pytest
from contract_data import patient

from ehr_store import Conflict, InvalidInput, NotFound, Store


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


def test_prefetched_writes_are_seen_and_commit_together(store: Store) -> None:
    """Writes of prefetched resources (queued in bulk by the SQL store) behave like any other:
    versions, history, no-op updates, visibility to reads and searches in the unit, rollback."""
    with store.unit_of_work() as uow:
        uow.resources.create(patient(mrn="PF0"), id="pf-0")
        uow.commit()
    keys = [("Patient", f"pf-{n}") for n in range(4)]
    with store.unit_of_work(write=True) as uow:
        uow.resources.prefetch(keys)
        created = [uow.resources.update("Patient", f"pf-{n}", {**patient(mrn=f"PF{n}"), "id": f"pf-{n}"})
                   for n in range(1, 4)]
        assert [(s.version_id, c) for s, c in created] == [(1, True)] * 3
        again, changed = uow.resources.update("Patient", "pf-1", {**patient(mrn="PF1"), "id": "pf-1"})
        assert (again.version_id, changed) == (1, False)  # equal content: no new version
        v2, _ = uow.resources.update("Patient", "pf-1", {**patient(mrn="PF1b"), "id": "pf-1"})
        v3, _ = uow.resources.update("Patient", "pf-1", {**patient(mrn="PF1c"), "id": "pf-1"})
        u0, _ = uow.resources.update("Patient", "pf-0", {**patient(mrn="PF0b"), "id": "pf-0"})
        assert (v2.version_id, v3.version_id, u0.version_id) == (2, 3, 2)
        assert uow.resources.read("Patient", "pf-1").version_id == 3
        assert set(uow.resources.read_many(keys)) == set(keys)
        found = uow.resources.search("Patient", [("identifier", "PF1c")])
        assert [m.id for m in found.matches] == ["pf-1"]
        with pytest.raises(Conflict):
            uow.resources.create(patient(), id="pf-2")
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.resources.read("Patient", "pf-1").version_id == 3
        assert uow.resources.history("Patient", "pf-1").total == 3
        assert uow.resources.read("Patient", "pf-0").version_id == 2
        assert uow.resources.search("Patient", [("identifier", "PF1b")]).matches == []
    with store.unit_of_work(write=True) as uow:
        uow.resources.prefetch(keys)
        uow.resources.update("Patient", "pf-2", {**patient(mrn="gone"), "id": "pf-2"})
        uow.resources.delete("Patient", "pf-3")
        uow.rollback()
    with store.unit_of_work() as uow:
        assert set(uow.resources.read_many(keys)) == set(keys)
        assert uow.resources.read("Patient", "pf-2").version_id == 1


def _durability_setting(store: Store) -> str | None:
    """SQLite `PRAGMA synchronous` / PostgreSQL `synchronous_commit` of a fresh unit's
    connection (None for the memory store)."""
    from ehr_store import SqlStore

    if not isinstance(store, SqlStore):
        return None
    with store.unit_of_work() as uow:
        conn = uow.connection(write=False)  # type: ignore[attr-defined]
        query = "PRAGMA synchronous" if conn.dialect.name == "sqlite" else "SHOW synchronous_commit"
        return str(conn.exec_driver_sql(query).scalar())


def _dialect(store: Store) -> str | None:
    """"sqlite" / "postgresql" for a SqlStore, None for the memory store."""
    from ehr_store import SqlStore

    if not isinstance(store, SqlStore):
        return None
    with store.unit_of_work() as uow:
        return str(uow.connection(write=False).dialect.name)  # type: ignore[attr-defined]


def test_relaxed_unit_commits_and_leaves_later_units_durable(store: Store) -> None:
    """`unit_of_work(durable=False)`: committed and visible like any unit; the connection it
    used goes back to durable commits (SQLite synchronous=FULL = 2, PostgreSQL on)."""
    before = _durability_setting(store)
    for _ in range(3):  # the pool hands the same connection back
        with store.unit_of_work(write=True, durable=False) as uow:
            uow.resources.create(patient(), id=f"relaxed-{_}")
            uow.messages.add(b"MSH|^~\\&|A|F", transport="mllp", peer=None, sending_application="A",
                             sending_facility="F", control_id=f"r{_}", message_type="ADT^A01", charset=None)
            uow.commit()
        assert _durability_setting(store) == before
    with store.unit_of_work(durable=False) as uow:
        uow.resources.create(patient(), id="relaxed-rolled-back")
    with store.unit_of_work() as uow:
        assert uow.resources.read("Patient", "relaxed-2").version_id == 1
        assert [m.control_id for m in uow.messages.list()] == ["r2", "r1", "r0"]
        with pytest.raises(NotFound):
            uow.resources.read("Patient", "relaxed-rolled-back")
    # SQLite is FULL (2) outside relaxed units; PostgreSQL keeps the server's own setting
    # (`on` in production, `off` in the non-durable throwaway test cluster)
    expected = {"sqlite": {"2"}, "postgresql": {"on", "off"}}.get(_dialect(store), {None})
    assert before in expected
