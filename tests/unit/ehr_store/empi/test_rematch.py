"""A known source Patient whose identifying features change is matched again
(`EmpiService._rematch` through `write_source_patient`, the ingestion path): alone in its
resident record it joins the resident it now matches at link level (the emptied record is
retired with `replaced-by`); sharing its record, or matching only at review level, it is
queued for review once and stays."""

from __future__ import annotations

from ehr_store import Store
from ehr_store.empi import EmpiService
from ehr_store.empi.golden import link_targets
from ehr_store.resident_id import check_character

from .test_linking import patient
from .test_write_source import read, write

RID = "441802199001020017"[:17]
RESIDENT_ID = RID + check_character(RID)


def golden_of(store: Store, pid: str) -> str:
    return link_targets(read(store, pid)[1], "refer")[0]


def test_an_a08_adding_the_resident_id_moves_a_lone_source(store: Store) -> None:
    svc = EmpiService()
    write(store, svc, "qy-1", patient("陈建华", "1990-01-02", mrn="Q1", resident_id=RESIDENT_ID))
    resident = golden_of(store, "qy-1")
    # another clinic registers him without 身份证号, a different phone and village: own record
    clinic = patient("陈建华", "1990-01-02", phone="13800007777", village="西村村", mrn="L1")
    write(store, svc, "lj-1", clinic)
    lone = golden_of(store, "lj-1")
    assert lone != resident
    # its A08 now sends the 身份证号: same person, the clinic's record joins his
    write(store, svc, "lj-1", patient("陈建华", "1990-01-02", phone="13800007777", village="西村村",
                                      mrn="L1", resident_id=RESIDENT_ID))
    assert golden_of(store, "lj-1") == resident
    assert sorted(link_targets(read(store, resident)[1], "seealso")) == ["lj-1", "qy-1"]
    retired = read(store, lone)[1]
    assert retired["active"] is False and link_targets(retired, "replaced-by") == [resident]
    with store.unit_of_work() as uow:
        links = svc.index(uow.resources).links(source_id="lj-1")
    assert [(x.golden_id, x.rule) for x in links if x.undone_at is None] == [(resident, "resident_id")]


def test_a_source_sharing_its_record_is_only_queued_for_review_once(store: Store) -> None:
    svc = EmpiService()
    write(store, svc, "qy-2", patient("陈建华", "1990-01-02", mrn="Q2", resident_id=RESIDENT_ID))
    resident = golden_of(store, "qy-2")
    write(store, svc, "a", patient("黄志明", "1985-03-04", phone="13800001111", mrn="A1"))
    write(store, svc, "b", patient("黄志明", "1985-03-04", phone="13800001111", mrn="B1"))
    shared = golden_of(store, "a")
    assert golden_of(store, "b") == shared
    # b's sender now claims the other man's 身份证号: a person must decide, nothing moves
    for phone in ("13800001111", "13800002222"):  # twice, with another change: still one review
        claim = patient("黄志明", "1985-03-04", phone=phone, mrn="B1", resident_id=RESIDENT_ID)
        write(store, svc, "b", claim)
    assert golden_of(store, "b") == shared and golden_of(store, "a") == shared
    with store.unit_of_work() as uow:
        reviews = svc.index(uow.resources).reviews(source_id="b")
    assert [(r.golden_id, r.details["current_golden_id"]) for r in reviews] == [(resident, shared)]
    assert resident != shared


def test_concurrent_units_for_one_new_person_make_one_resident(pg_store_url: str) -> None:
    """Two units (two facilities' messages) matching the same new person at once on
    PostgreSQL: the second waits on the first's blocking keys (advisory locks), then links to
    the resident the first created instead of creating a second one."""
    import threading

    from ehr_store import SqlStore, StoreSettings

    store = SqlStore(StoreSettings(database_url=pg_store_url, pool_size=4))
    svc = EmpiService()
    first_written, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with store.unit_of_work(write=True) as uow:
                doc = patient("周丽", "1978-05-06", sex="female", mrn="F1", resident_id=RESIDENT_ID)
                svc.write_source_patient(uow.resources, {**doc, "id": "f-1"})
                first_written.set()
                release.wait(10)
                uow.commit()
        except BaseException as exc:  # reported below
            errors.append(exc)
            first_written.set()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert first_written.wait(10)
        second_done = threading.Event()

        def second() -> None:
            try:
                write(store, svc, "g-1", patient("周丽", "1978-05-06", sex="female", mrn="G1",
                                                 resident_id=RESIDENT_ID))
            except BaseException as exc:
                errors.append(exc)
            second_done.set()

        other = threading.Thread(target=second)
        other.start()
        assert not second_done.wait(0.5), "the second unit must wait for the first one's keys"
        release.set()
        other.join(10)
        thread.join(10)
        assert not errors
        assert golden_of(store, "g-1") == golden_of(store, "f-1")
    finally:
        release.set()
        thread.join(10)
        store.close()
