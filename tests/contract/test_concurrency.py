"""Contract: concurrent writers on SQLite and PostgreSQL (real threads, real databases).

Two updates of one version must not both win; unconditional updates queue up and every
one of them becomes its own version.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from contract_data import patient

from ehr_store import DomainError, SqlStore, StoreSettings, VersionConflict


@pytest.fixture(params=["sqlite", "postgres"])
def sql_store(request: pytest.FixtureRequest) -> Iterator[SqlStore]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_store_url")
    store = SqlStore(StoreSettings(database_url=url, pool_size=8))
    try:
        yield store
    finally:
        store.close()


def _run_threads(count: int, work: Callable[[int], object]) -> list[object]:
    results: list[object] = [None] * count

    def target(n: int) -> None:
        try:
            results[n] = work(n)
        except Exception as exc:  # collected and asserted on by the caller
            results[n] = exc

    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_two_if_match_updates_of_one_version_do_not_both_win(sql_store: SqlStore) -> None:
    with sql_store.unit_of_work() as uow:
        uow.resources.create(patient(), id="race")
        uow.commit()
    barrier = threading.Barrier(2)

    def update(n: int) -> int:
        with sql_store.unit_of_work() as uow:
            barrier.wait()
            stored, _ = uow.resources.update("Patient", "race", {**patient(mrn=f"W{n}"), "id": "race"},
                                             if_match=1)
            time.sleep(0.2)  # hold the row while the other writer tries
            uow.commit()
            return stored.version_id

    results = _run_threads(2, update)
    winners = [r for r in results if isinstance(r, int)]
    losers = [r for r in results if isinstance(r, DomainError)]
    assert winners == [2], results
    assert len(losers) == 1 and isinstance(losers[0], VersionConflict), results
    with sql_store.unit_of_work() as uow:
        assert uow.resources.read("Patient", "race").version_id == 2
        assert uow.resources.history("Patient", "race").total == 2


def test_unconditional_updates_all_become_versions(sql_store: SqlStore) -> None:
    with sql_store.unit_of_work() as uow:
        uow.resources.create(patient(), id="queue")
        uow.commit()
    threads, rounds = 4, 5

    def update(n: int) -> int:
        for r in range(rounds):
            with sql_store.unit_of_work() as uow:
                uow.resources.update("Patient", "queue", {**patient(mrn=f"T{n}-{r}"), "id": "queue"})
                uow.commit()
        return n

    results = _run_threads(threads, update)
    assert results == list(range(threads)), results
    with sql_store.unit_of_work() as uow:
        page = uow.resources.history("Patient", "queue", count=100)
    assert sorted(e.version_id for e in page.entries) == list(range(1, threads * rounds + 2))


def test_concurrent_update_as_create_of_one_id(sql_store: SqlStore) -> None:
    barrier = threading.Barrier(2)

    def create(n: int) -> bool:
        with sql_store.unit_of_work() as uow:
            barrier.wait()
            _, created = uow.resources.update("Patient", "fresh", {**patient(mrn=f"N{n}"), "id": "fresh"})
            time.sleep(0.2)
            uow.commit()
            return created

    results = _run_threads(2, create)
    assert results.count(True) == 1, results
    other = next(r for r in results if r is not True)
    assert other is False or isinstance(other, DomainError), results
    with sql_store.unit_of_work() as uow:
        current = uow.resources.read("Patient", "fresh").version_id
        assert current in (1, 2)
        assert uow.resources.history("Patient", "fresh").total == current
