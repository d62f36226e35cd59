"""EMPI over every store backend (memory, SQLite, PostgreSQL): linking, unlink, rollback."""

from __future__ import annotations

from typing import Any

from ehr_store import Store
from ehr_store.empi import EmpiService
from ehr_store.empi.golden import link_targets

from .test_linking import patient


def ingest(store: Store, svc: EmpiService, pid: str, doc: dict[str, Any], *, commit: bool = True) -> None:
    with store.unit_of_work() as uow:
        stored, _ = uow.resources.update("Patient", pid, {**doc, "id": pid})
        svc.on_source_patient(uow.resources, stored)
        if commit:
            uow.commit()


def refer(store: Store, pid: str) -> str:
    with store.unit_of_work() as uow:
        return link_targets(uow.resources.read("Patient", pid).as_dict(), "refer")[0]


def test_link_review_unlink_and_rollback(store: Store) -> None:
    svc = EmpiService()
    ingest(store, svc, "a", patient("王晓东", "1990-01-02", mrn="A1"))
    ingest(store, svc, "b", patient("王小东", "1990-01-02", mrn="B1"))
    ingest(store, svc, "c", patient("王晓东", "1990-01-09", phone="13800009999", village="西村村", mrn="C1"))
    ingest(store, svc, "d", patient("李强", "1950-06-06", phone="13800005555", mrn="D1"), commit=False)
    golden = refer(store, "a")
    assert refer(store, "b") == golden and refer(store, "c") != golden
    with store.unit_of_work() as uow:
        index = svc.index(uow.resources)
        assert index.get_record("d") is None  # rolled back with the unit of work
        assert [(r.source_id, r.golden_id) for r in index.reviews()] == [("c", golden)]
        assert index.sources_of(golden) == ["a", "b"]
        new = svc.unlink(uow.resources, "b", by="tester")
        uow.commit()
    assert refer(store, "b") == new
    with store.unit_of_work() as uow:
        links = svc.index(uow.resources).links(source_id="b")
        assert [(link.golden_id, link.undone_by) for link in links] == [(golden, "tester"), (new, None)]
        assert link_targets(uow.resources.read("Patient", golden).as_dict(), "seealso") == ["a"]
