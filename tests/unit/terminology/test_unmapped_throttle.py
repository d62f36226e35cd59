"""Unmapped-code counts written at most once per `flush_seconds` per code during ingestion
(terminology.unmapped.ThrottledPersister); the code itself is written with its first message."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ehr_store import Store, VersionConflict
from terminology import MemoryUnmappedLog
from terminology.unmapped import ThrottledPersister, from_basic, record_id

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def _log(code: str, count: int = 1, minute: int = 0) -> MemoryUnmappedLog:
    log = MemoryUnmappedLog()
    log.record("QYRMYY", "urn:local:lab", code, "血糖", count=count, at=T0.replace(minute=minute))
    return log


def _stored(store: Store, code: str) -> tuple[int, int, datetime] | None:
    with store.unit_of_work() as uow:
        try:
            version = uow.resources.read("Basic", record_id("QYRMYY", "urn:local:lab", code))
        except Exception:
            return None
    record = from_basic(version.as_dict())
    assert record is not None
    return version.version_id, record.count, record.last_seen


def _persist(store: Store, persister: ThrottledPersister, log: MemoryUnmappedLog) -> int:
    with store.unit_of_work(write=True) as uow:
        written = persister.persist(uow.resources, log)
        uow.commit()
    return written


def test_first_occurrence_at_once_then_counts_once_per_window(store: Store) -> None:
    now = [100.0]
    persister = ThrottledPersister(flush_seconds=30, clock=lambda: now[0])
    assert _persist(store, persister, _log("GLU", 2, minute=1)) == 1
    assert _stored(store, "GLU") == (1, 2, T0.replace(minute=1))
    now[0] = 110.0  # inside the window: counted in memory only
    assert _persist(store, persister, _log("GLU", 3, minute=2)) == 0
    assert _persist(store, persister, _log("K", 1, minute=2)) == 1  # a new code is never held back
    assert _stored(store, "GLU") == (1, 2, T0.replace(minute=1)) and persister.pending == 1
    now[0] = 131.0  # the window has passed: the held counts go with the next batch
    assert _persist(store, persister, _log("GLU", 1, minute=3)) == 1
    assert _stored(store, "GLU") == (2, 6, T0.replace(minute=3)) and persister.pending == 0


def test_flush_writes_what_is_held(store: Store) -> None:
    persister = ThrottledPersister(flush_seconds=3600, clock=lambda: 0.0)
    _persist(store, persister, _log("NA"))
    _persist(store, persister, _log("NA", 4, minute=5))
    with store.unit_of_work(write=True) as uow:
        assert persister.flush(uow.resources) == 1
        uow.commit()
    assert _stored(store, "NA") == (2, 5, T0.replace(minute=5)) and persister.pending == 0


def test_zero_seconds_writes_every_batch(store: Store) -> None:
    persister = ThrottledPersister(flush_seconds=0, clock=lambda: 0.0)
    for _ in range(3):
        assert _persist(store, persister, _log("CL")) == 1
    assert _stored(store, "CL") == (3, 3, T0)


def test_hie_serve_writes_held_counts_on_time_and_at_stop(store: Store) -> None:
    """`UnmappedCountFlusher` (a `hie serve` background service): held counts reach the store
    within the window even when no later batch arrives, and at stop."""
    import asyncio

    from hie_server.startup import UnmappedCountFlusher
    from terminology import TerminologyService, TerminologySettings

    service = TerminologyService(store, TerminologySettings(unmapped_flush_seconds=3600))
    for count in (2, 3):  # the first is written at once, the second held
        with store.unit_of_work(write=True) as uow:
            service.persist_unmapped(uow.resources, _log("GLU", count))
            uow.commit()
    assert _stored(store, "GLU") == (1, 2, T0)

    async def run() -> None:
        flusher = UnmappedCountFlusher(service)
        flusher.interval = 0.05  # the test's window
        await flusher.start()
        for _ in range(100):
            await asyncio.sleep(0.05)
            if (_stored(store, "GLU") or (0, 0, T0))[1] == 5:
                break
        assert (_stored(store, "GLU") or (0, 0, T0))[1] == 5  # written by the timer, no batch came
        with store.unit_of_work(write=True) as uow:
            service.persist_unmapped(uow.resources, _log("GLU", 4))  # held again
            uow.commit()
        await flusher.stop()  # written at stop

    asyncio.run(run())
    stored = _stored(store, "GLU")
    assert stored is not None and stored[1] == 9


def _lose_race(store: Store, persister: ThrottledPersister, log: MemoryUnmappedLog) -> None:
    """A unit that writes the unmapped counts, then loses a write race (a real `VersionConflict`
    from the store, as when another MLLP process wrote first) and rolls back."""
    with store.unit_of_work(write=True) as uow:
        uow.resources.update("Basic", "race", {"resourceType": "Basic", "id": "race", "code": {"text": "r"}})
        uow.commit()
    with pytest.raises(VersionConflict), store.unit_of_work(write=True) as uow, persister.unit():
        assert persister.persist(uow.resources, log) == 1
        uow.resources.update("Basic", "race", {"resourceType": "Basic", "id": "race"}, if_match=7)
        uow.commit()


def _unit_persist(store: Store, persister: ThrottledPersister, log: MemoryUnmappedLog) -> int:
    with store.unit_of_work(write=True) as uow, persister.unit():
        written = persister.persist(uow.resources, log)
        uow.commit()
    return written


def test_rolled_back_unit_gives_back_the_counts_it_carried(store: Store) -> None:
    """Held counts of committed batches folded into a unit that rolls back are held again,
    and the retry of the same message writes its code at once, with the full count."""
    now = [100.0]
    persister = ThrottledPersister(flush_seconds=30, clock=lambda: now[0])
    assert _unit_persist(store, persister, _log("GLU", 2, minute=1)) == 1
    now[0] = 110.0
    assert _unit_persist(store, persister, _log("GLU", 3, minute=2)) == 0  # held
    now[0] = 131.0
    _lose_race(store, persister, _log("GLU", 1, minute=3))  # carried the held 3, rolled back
    assert _stored(store, "GLU") == (1, 2, T0.replace(minute=1)) and persister.pending == 1
    assert _unit_persist(store, persister, _log("GLU", 1, minute=3)) == 1  # the retry
    assert _stored(store, "GLU") == (2, 6, T0.replace(minute=3)) and persister.pending == 0


def test_new_code_of_a_rolled_back_unit_is_written_by_the_retry(store: Store) -> None:
    persister = ThrottledPersister(flush_seconds=3600, clock=lambda: 0.0)
    _lose_race(store, persister, _log("NA", 2))
    assert _stored(store, "NA") is None and persister.pending == 0  # the message counts nothing
    assert _unit_persist(store, persister, _log("NA", 2)) == 1  # not held back until a flush
    assert _stored(store, "NA") == (1, 2, T0)


def test_held_counts_of_a_rolled_back_unit_are_not_counted_twice(store: Store) -> None:
    persister = ThrottledPersister(flush_seconds=3600, clock=lambda: 0.0)
    assert _unit_persist(store, persister, _log("K", 2)) == 1
    with pytest.raises(RuntimeError), store.unit_of_work(write=True) as uow, persister.unit():
        assert persister.persist(uow.resources, _log("K", 3)) == 0  # held in the unit
        raise RuntimeError("store error")
    assert persister.pending == 0
    assert _unit_persist(store, persister, _log("K", 3)) == 0  # the retry, held once
    with store.unit_of_work(write=True) as uow, persister.unit():
        assert persister.flush(uow.resources) == 1
        uow.commit()
    assert _stored(store, "K") == (2, 5, T0) and persister.pending == 0


def test_rolled_back_flush_keeps_its_counts(store: Store) -> None:
    from terminology import TerminologyService, TerminologySettings, unmapped_unit

    service = TerminologyService(store, TerminologySettings(unmapped_flush_seconds=3600))
    for count in (2, 3):  # the first is written at once, the second held
        with store.unit_of_work(write=True) as uow, unmapped_unit(service):
            service.persist_unmapped(uow.resources, _log("GLU", count))
            uow.commit()
    persister = service._unmapped
    with pytest.raises(RuntimeError), store.unit_of_work(write=True) as uow, persister.unit():
        assert persister.flush(uow.resources) == 1
        raise RuntimeError("store error")
    assert _stored(store, "GLU") == (1, 2, T0) and persister.pending == 1
    assert service.flush_unmapped() == 1 and service.flush_unmapped() == 0
    assert _stored(store, "GLU") == (2, 5, T0)
    with unmapped_unit(None):  # ingestion without a terminology service: a no-op
        pass
