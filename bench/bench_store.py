"""Store benchmark: create/s (one unit of work per resource, and batched), read/s on SQLite and PostgreSQL.

Usage: `python bench/bench_store.py [N] [--batch 100] [--backends sqlite,postgres]`.
PostgreSQL: `HIE_TEST_POSTGRES_URL` (a role that may create databases) or a throwaway
cluster started with `tests/pgcluster.py` (fsync on, as in production). Validation and
search indexing are included in every write. Synthetic data only. "prefetched" loads the
batch's current rows first (`ResourceRepository.prefetch`), as transaction Bundles do, so
the store writes the rows in bulk.

Measured 2026-11-29 on the shared 2-core machine, other work keeping the load average at
2.4-4 (creates/s wall). Paired runs, this code against the code before the write-behind and
bulk rows, back to back: PostgreSQL (durable) 1 per unit 542-625 (before 530-559), 100 per
unit 2,761-3,117 (before 1,796-2,132), prefetched 3,903-4,104; SQLite 1 per unit 883 (before
900, then with `synchronous=NORMAL`), 100 per unit 4,154 (before 3,604), prefetched 4,634;
reads 13,800 (SQLite), 3,300-4,800 (PostgreSQL). Under heavier I/O from other work single
units drop (SQLite 270-710/s: every commit is synced; PostgreSQL 218-913/s).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pgcluster import ThrowawayCluster, create_database, drop_database

from ehr_store import SqlStore, StoreSettings, upgrade_schema

FAMILIES = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周"]
GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋"]


def synthetic(n: int, rng: random.Random) -> dict[str, Any]:
    """Alternate Patients and Observations (glucose with a 2-decimal value)."""
    if n % 2 == 0:
        return {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:oid:2.16.156.10011.0.1.100", "value": f"MRN{n:08d}"}],
            "name": [{"family": rng.choice(FAMILIES), "given": [rng.choice(GIVEN)]}],
            "gender": rng.choice(["male", "female"]),
            "birthDate": f"{rng.randint(1940, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "telecom": [{"system": "phone", "value": f"138-0000-{n % 10000:04d}"}],
        }
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
        "subject": {"reference": f"Patient/p{n - 1}"},
        "effectiveDateTime": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T08:00:00+08:00",
        "valueQuantity": {"value": Decimal(f"{rng.randint(30, 150) / 10:.2f}"), "unit": "mmol/L",
                          "system": "http://unitsofmeasure.org", "code": "mmol/L"},
    }


def _rate(label: str, count: int, run: Callable[[], None]) -> float:
    start, cpu = time.perf_counter(), time.process_time()
    run()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    rate = count / elapsed if elapsed else float("inf")
    cpu_rate = count / cpu if cpu else float("inf")
    print(f"  {label:<34} {count:>7} in {elapsed:6.2f} s = {rate:7.0f} /s wall"
          f"  ({cpu_rate:7.0f} /s per CPU-second of this process)")
    return rate


def bench(url: str, n: int, batch: int) -> None:
    """Run the three measurements against a migrated database at `url`."""
    rng = random.Random(7)
    docs = [synthetic(i, rng) for i in range(n)]
    ids = [("p" if i % 2 == 0 else "o") + str(i) for i in range(n)]
    store = SqlStore(StoreSettings(database_url=url, pool_size=4))
    single = min(n, 1000)

    def create_single() -> None:
        for i in range(single):
            with store.unit_of_work() as uow:
                uow.resources.create(docs[i], id=f"s{ids[i]}")
                uow.commit()

    def create_batched() -> None:
        for start in range(0, n, batch):
            with store.unit_of_work(write=True) as uow:
                for i in range(start, min(n, start + batch)):
                    uow.resources.create(docs[i], id=ids[i])
                uow.commit()

    types = ["Patient" if i % 2 == 0 else "Observation" for i in range(n)]
    keys = list(zip(types, ids, strict=True))

    def create_prefetched() -> None:  # as a transaction Bundle does (hie_server.bundle_execute)
        for start in range(0, n, batch):
            with store.unit_of_work(write=True) as uow:
                chunk = range(start, min(n, start + batch))
                uow.resources.prefetch((types[i], f"t{ids[i]}") for i in chunk)
                for i in chunk:
                    uow.resources.create(docs[i], id=f"t{ids[i]}")
                uow.commit()

    rng.shuffle(keys)

    def read_each() -> None:
        for rtype, rid in keys:
            with store.unit_of_work() as uow:
                uow.resources.read(rtype, rid)

    try:
        _rate("create, 1 per unit of work", single, create_single)
        _rate(f"create, {batch} per unit of work", n, create_batched)
        _rate(f"create, {batch} per unit, prefetched", n, create_prefetched)
        _rate("read, 1 per unit of work", n, read_each)
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("n", nargs="?", type=int, default=5000, help="resources to load (default 5000)")
    parser.add_argument("--batch", type=int, default=100, help="resources per unit of work when batched")
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    backends = args.backends.split(",")
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            upgrade_schema(url)
            print(f"SQLite ({url}), N={args.n}")
            bench(url, args.n, args.batch)
    if "postgres" in backends:
        cluster: ThrowawayCluster | None = None
        admin = os.environ.get("HIE_TEST_POSTGRES_URL")
        if not admin:
            cluster = ThrowawayCluster(durable=True)
            admin = cluster.start()
        url = create_database(admin)
        try:
            upgrade_schema(url)
            print(f"PostgreSQL ({'throwaway cluster' if cluster else 'HIE_TEST_POSTGRES_URL'}), N={args.n}")
            bench(url, args.n, args.batch)
        finally:
            drop_database(admin, url)
            if cluster is not None:
                cluster.stop()


if __name__ == "__main__":
    main()
