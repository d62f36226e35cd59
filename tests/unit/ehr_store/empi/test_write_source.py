"""`EmpiService.write_source_patient` (the ingestion and register-import path) on every store
backend: a new source Patient is written once with its `refer` link, an unchanged one writes
nothing, a changed one keeps its link and refreshes its resident record."""

from __future__ import annotations

import io
from typing import Any

from ehr_store import Store
from ehr_store.empi import EmpiService, import_residents, read_rows
from ehr_store.empi.golden import link_targets
from ehr_store.resident_id import check_character

from .test_linking import patient


def write(store: Store, svc: EmpiService, pid: str, doc: dict[str, Any]) -> int:
    """Write through the EMPI in one committed unit; returns the stored version id."""
    with store.unit_of_work(write=True) as uow:
        stored = svc.write_source_patient(uow.resources, {**doc, "id": pid})
        uow.commit()
    return stored.version_id


def read(store: Store, pid: str) -> tuple[int, dict[str, Any]]:
    with store.unit_of_work() as uow:
        found = uow.resources.read("Patient", pid)
        return found.version_id, found.as_dict()


def history_length(store: Store, pid: str) -> int:
    with store.unit_of_work() as uow:
        return len(uow.resources.history("Patient", pid).entries)


def test_new_sources_are_written_once_with_their_link(store: Store) -> None:
    svc = EmpiService()
    assert write(store, svc, "a", patient("王晓东", "1990-01-02", mrn="A1")) == 1
    _, a_doc = read(store, "a")
    golden = link_targets(a_doc, "refer")[0]
    assert history_length(store, "a") == 1
    assert link_targets(read(store, golden)[1], "seealso") == ["a"]

    assert write(store, svc, "b", patient("王小东", "1990-01-02", mrn="B1")) == 1  # links to a's resident
    assert link_targets(read(store, "b")[1], "refer") == [golden] and history_length(store, "b") == 1
    assert link_targets(read(store, golden)[1], "seealso") == ["a", "b"]

    c = patient("王晓东", "1990-01-09", phone="13800009999", village="西村村", mrn="C1")
    assert write(store, svc, "c", c) == 1  # between the thresholds: own resident, queued for review
    c_golden = link_targets(read(store, "c")[1], "refer")[0]
    assert c_golden != golden
    with store.unit_of_work() as uow:
        index = svc.index(uow.resources)
        assert [(r.source_id, r.golden_id) for r in index.reviews()] == [("c", golden)]
        assert [(link.golden_id, link.rule) for link in index.links(source_id="b")] == [
            (golden, "probabilistic")
        ]
        assert [(link.golden_id, link.rule) for link in index.links(source_id="c")] == [(c_golden, "new")]


def test_unchanged_source_writes_nothing_and_a_change_refreshes_the_resident(store: Store) -> None:
    svc = EmpiService()
    doc = patient("李强", "1950-06-06", phone="13800005555", mrn="D1")
    write(store, svc, "d", doc)
    _, d_doc = read(store, "d")
    golden = link_targets(d_doc, "refer")[0]
    golden_version = read(store, golden)[0]
    stored = {k: v for k, v in d_doc.items() if k != "meta"}

    assert write(store, svc, "d", stored) == 1  # as stored (with its link): no new version anywhere
    assert read(store, golden)[0] == golden_version

    changed = {**doc, "telecom": [{"system": "phone", "value": "13800006666"}]}  # no link sent
    assert write(store, svc, "d", changed) == 2
    _version, d_doc = read(store, "d")
    assert link_targets(d_doc, "refer") == [golden]  # the link survives an update that drops it
    golden_doc = read(store, golden)[1]
    assert [t["value"] for t in golden_doc["telecom"]] == ["13800006666"]
    with store.unit_of_work() as uow:
        record = svc.index(uow.resources).get_record("d")
        assert record is not None and record.features.phones == ("13800006666",)


def test_register_import_links_once_and_reimport_writes_nothing(store: Store) -> None:
    rid = "44180219900102" + "123"
    rid += check_character(rid)
    csv_text = f"身份证号,姓名,性别,出生日期,电话,地址\n{rid},王晓东,男,1990-01-02,13800001234,石角镇东围村\n"
    svc = EmpiService()
    for _ in range(2):
        report = import_residents(store, svc, read_rows(io.StringIO(csv_text)))
        assert report.imported == 1 and not report.errors
    pid = f"reg-{rid}"
    assert history_length(store, pid) == 1  # written once with its link, the re-import changed nothing
    golden = link_targets(read(store, pid)[1], "refer")[0]
    # a clinic's record of the same resident (same 身份证号) joins the register's resident
    write(store, svc, "clinic-1", patient("王晓东", "1990-01-02", mrn="K1", resident_id=rid))
    assert link_targets(read(store, "clinic-1")[1], "refer") == [golden]
    assert sorted(link_targets(read(store, golden)[1], "seealso")) == ["clinic-1", pid]
