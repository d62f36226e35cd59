"""Search benchmark: index-extraction cost per resource, and search latency at N resources.

Prints: extraction µs/resource with the compiled FHIRPath subset (what the store uses) and with
fhirpathpy for every expression (the alternative measured); then for SQLite and PostgreSQL,
load time and p50/p95 of `Patient?identifier=` and `Observation?subject=&code=&date=ge`; then
`--schedules` × 32 Slots written after the ANALYZE and p50/p95 of `Slot?schedule=` (and
`&status=free`), also as the one-statement semi-join used before (`sql_probe.py`).

Usage: `.venv/bin/python bench/bench_search.py [--n 20000] [--queries 200] [--backends sqlite,postgres]`
(`--n 1000000` for the 1M target; `--scale 10000` also runs at 10k to compare).
PostgreSQL: `HIE_BENCH_POSTGRES_URL` (a database URL) or a throwaway cluster (tests/pgcluster.py).

Measured 2026-11-29, `--n 300000 --queries 100`, shared 2-core machine, load average 1.2-2.1,
p50 (p95) ms, SQLite / PostgreSQL: Patient?identifier= 0.36 (1.41) / 0.47 (0.58);
Observation?subject=&code=&date=ge 0.82 (2.75) / 1.05 (1.20); with 6,400 Slots written after
the ANALYZE: Slot?schedule= 0.42 (0.46) / 1.56 (2.05), as one statement 0.48 / 2,004;
Slot?schedule=&status=free 0.60 (0.71) / 2.50 (2.92), as one statement 0.67 / 1,154.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from ehr_store.engine import make_engine
from ehr_store.jsonio import dumps
from ehr_store.resident_id import check_character
from ehr_store.search import execute_search, extract_index, get_registry, sql_probe, write_indexes
from ehr_store.settings import StoreSettings
from ehr_store.tables import resource_table

RID = "urn:oid:2.16.156.10011.1.3"
CODES = ["718-7", "2345-7", "2160-0", "789-8", "6690-2", "777-3", "2951-2", "2823-3"]
OBS_PER_PATIENT = 9
FAMILIES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛"]


def resident_id(n: int) -> str:
    """A distinct valid 身份证号 per n (birth date and sequence number derived from n)."""
    born = datetime(1950, 1, 1) + timedelta(days=n % 20000)
    first17 = f"441802{born:%Y%m%d}{n // 20000 % 1000:03d}"
    return first17 + check_character(first17)


def make_patient(n: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": f"p{n}",
        "identifier": [
            {"system": RID, "value": resident_id(n)},
            {"system": "urn:oid:1.2.156.112604.1.2.1", "value": f"MRN{n:07d}"},
        ],
        "name": [{"family": FAMILIES[n % len(FAMILIES)], "given": [GIVEN[n % len(GIVEN)]]}],
        "gender": "male" if n % 2 else "female",
        "birthDate": f"{1950 + n % 60}-0{1 + n % 9}-1{n % 10}",
        "telecom": [{"system": "phone", "value": f"138{n:08d}"}],
        "address": [{"city": "清远市", "line": [f"连江路{n % 300}号"]}],
    }


def make_observation(n: int, patient: int, k: int) -> dict[str, Any]:
    when = datetime(2024, 1, 1, 8, tzinfo=UTC) + timedelta(days=(patient * 7 + k * 37) % 900, minutes=k)
    return {
        "resourceType": "Observation",
        "id": f"o{n}",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": CODES[k % len(CODES)]}]},
        "subject": {"reference": f"Patient/p{patient}"},
        "encounter": {"reference": f"Encounter/e{patient}"},
        "effectiveDateTime": when.isoformat(),
        "valueQuantity": {
            "value": Decimal(f"{(n % 200) / 10:.1f}"),
            "unit": "g/dL",
            "system": "http://unitsofmeasure.org",
            "code": "g/dL",
        },
    }


def resources(n: int) -> Iterator[dict[str, Any]]:
    """n resources: one Patient then OBS_PER_PATIENT Observations, repeated."""
    made, patient, obs = 0, 0, 0
    while made < n:
        yield make_patient(patient)
        made += 1
        for k in range(OBS_PER_PATIENT):
            if made >= n:
                break
            yield make_observation(obs, patient, k)
            obs += 1
            made += 1
        patient += 1


def bench_extraction(samples: int = 2000) -> None:
    from fhirpathpy import compile as fp_compile
    from fhirpathpy.models import models

    registry = get_registry()
    docs = list(resources(samples))
    for doc in docs[:50]:  # warm up: lazy imports (pypinyin), compiled paths
        extract_index(doc, registry)
    start = time.perf_counter()
    for doc in docs:
        extract_index(doc, registry)
    fast = (time.perf_counter() - start) / len(docs) * 1e6
    compiled: dict[str, list[Any]] = {}
    for rtype in ("Patient", "Observation"):
        compiled[rtype] = [
            fp_compile(p.expression, models["r4"])
            for p in registry.params_for(rtype).values()
            if p.indexed and p.expression
        ]
    subset = docs[:200]
    start = time.perf_counter()
    for doc in subset:
        for fn in compiled[doc["resourceType"]]:
            with contextlib.suppress(Exception):  # fhirpathpy cannot resolve(); still timed
                fn(doc)
    slow = (time.perf_counter() - start) / len(subset) * 1e6
    print(
        f"extraction (Patient/Observation mix): compiled subset {fast:.1f} µs/resource (incl. value "
        f"conversion); fhirpathpy evaluation alone {slow:.0f} µs/resource"
    )


def load(engine: sa.Engine, n: int, batch: int = 2000) -> float:
    registry = get_registry()
    now = datetime.now(UTC)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    items: list[tuple[str, str, Any]] = []

    def flush() -> None:
        with engine.begin() as conn:
            conn.execute(resource_table.insert(), rows)
            write_indexes(conn, items, replace=False)
        rows.clear()
        items.clear()

    for doc in resources(n):
        rows.append(
            {
                "resource_type": doc["resourceType"],
                "id": doc["id"],
                "version_id": 1,
                "last_updated": now,
                "deleted": False,
                "content": dumps(doc),
            }
        )
        items.append((doc["resourceType"], doc["id"], extract_index(doc, registry)))
        if len(rows) >= batch:
            flush()
    if rows:
        flush()
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE"))
    return time.perf_counter() - start


def timed(fn: Callable[[], int], times: int) -> tuple[float, float, int]:
    samples, found = [], 0
    for _ in range(times):
        start = time.perf_counter()
        found += fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1], found


def bench_queries(engine: sa.Engine, n: int, queries: int) -> dict[str, tuple[float, float]]:
    settings = StoreSettings()
    registry = get_registry()
    patients = max(1, n // (OBS_PER_PATIENT + 1))
    rng = random.Random(7)
    out: dict[str, tuple[float, float]] = {}
    with engine.connect() as conn:

        def by_identifier() -> int:
            p = rng.randrange(patients)
            return len(
                execute_search(
                    conn,
                    "Patient",
                    [("identifier", f"{RID}|{resident_id(p)}")],
                    settings=settings,
                    registry=registry,
                ).matches
            )

        def by_subject_code_date() -> int:
            p = rng.randrange(patients)
            params = [
                ("subject", f"Patient/p{p}"),
                ("code", f"http://loinc.org|{CODES[p % 3]}"),
                ("date", "ge2024-06-01"),
            ]
            return len(
                execute_search(conn, "Observation", params, settings=settings, registry=registry).matches
            )

        for name, fn in (
            ("Patient?identifier=", by_identifier),
            ("Observation?subject=&code=&date=ge", by_subject_code_date),
        ):
            p50, p95, found = timed(fn, queries)
            out[name] = (p50, p95)
            print(
                f"  {name:40s} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  ({found} matches in {queries} queries)"
            )
    return out


def add_slots(engine: sa.Engine, schedules: int, per_schedule: int = 32) -> None:
    """`schedules` × `per_schedule` Slots written after the ANALYZE (statistics without Slots, as
    when `publish_many` publishes a first timetable on a loaded store)."""
    registry = get_registry()
    now = datetime.now(UTC)
    docs = [
        {"resourceType": "Slot", "id": f"slot-{k}-{i}", "status": "free" if i % 4 else "busy",
         "schedule": {"reference": f"Schedule/sch-{k}"},
         "start": (now + timedelta(days=i)).isoformat(),
         "end": (now + timedelta(days=i, minutes=30)).isoformat()}
        for k in range(schedules)
        for i in range(per_schedule)
    ]
    with engine.begin() as conn:
        conn.execute(resource_table.insert(), [
            {"resource_type": "Slot", "id": d["id"], "version_id": 1, "last_updated": now, "deleted": False,
             "content": dumps(d)}
            for d in docs
        ])
        write_indexes(conn, [("Slot", d["id"], extract_index(d, registry)) for d in docs], replace=False)


def bench_reference(engine: sa.Engine, schedules: int, queries: int) -> None:
    """`Slot?schedule=` (and `&status=free`) with statistics that predate the Slots: the ids
    fetched first (`sql_probe`), and the one-statement semi-join (`PROBE_LIMIT` 0, 3 queries)."""
    settings, registry, rng = StoreSettings(), get_registry(), random.Random(11)
    with engine.connect() as conn:
        for extra in ([], [("status", "free")]):

            def by_schedule(extra: list[tuple[str, str]] = extra) -> int:
                params = [("schedule", f"Schedule/sch-{rng.randrange(schedules)}"), *extra]
                return len(execute_search(conn, "Slot", params, settings=settings, registry=registry).matches)

            name = "Slot?schedule=" + ("&status=free" if extra else "")
            p50, p95, found = timed(by_schedule, queries)
            print(f"  {name:40s} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  ({found} matches, {queries} queries)")
            limit, sql_probe.PROBE_LIMIT = sql_probe.PROBE_LIMIT, 0
            try:
                p50, _, found = timed(by_schedule, 3)
            finally:
                sql_probe.PROBE_LIMIT = limit
            print(f"  {name + ' (one statement)':40s} p50 {p50:6.2f} ms  ({found} matches in 3 queries)")


def engine_for(backend: str, workdir: Path, tag: str) -> tuple[sa.Engine, Callable[[], None]]:
    if backend == "sqlite":
        engine = make_engine(StoreSettings(database_url=f"sqlite:///{workdir / f'bench-{tag}.db'}"))
        SQLModel.metadata.create_all(engine)
        return engine, engine.dispose
    url = os.environ.get("HIE_BENCH_POSTGRES_URL")
    stop: Callable[[], None] = lambda: None  # noqa: E731
    if not url:
        from pgcluster import ThrowawayCluster, create_database

        cluster = ThrowawayCluster(durable=False)
        admin = cluster.start()
        url = create_database(admin)
        stop = cluster.stop
    engine = make_engine(StoreSettings(database_url=url, pool_size=2))
    SQLModel.metadata.drop_all(engine)
    SQLModel.metadata.create_all(engine)

    def close() -> None:
        engine.dispose()
        stop()

    return engine, close


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20000, help="resources to load (1000000 for the 1M target)")
    parser.add_argument("--scale", type=int, default=0, help="also run at this smaller N and compare")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--schedules", type=int, default=200, help="Schedules of 32 Slots, after ANALYZE")
    args = parser.parse_args()
    bench_extraction()
    sizes = [s for s in (args.scale, args.n) if s]
    with tempfile.TemporaryDirectory(prefix="hie-bench-search-") as tmp:
        for backend in args.backends.split(","):
            for n in sizes:
                engine, close = engine_for(backend, Path(tmp), str(n))
                try:
                    seconds = load(engine, n)
                    rate = n / seconds
                    print(f"{backend} N={n}: loaded in {seconds:.1f} s ({rate:.0f} resources/s incl. index)")
                    bench_queries(engine, n, args.queries)
                    add_slots(engine, args.schedules)
                    print(f"  + {args.schedules * 32} Slots, not analyzed:")
                    bench_reference(engine, args.schedules, args.queries)
                finally:
                    close()


if __name__ == "__main__":
    main()
