"""Benchmark: `$find` p50/p95 and bookings/s with N specialists × D days of slots, on SQLite and
PostgreSQL (in-process ASGI client, the real app and auth middleware, 2 shared cores).

    python bench/bench_telemedicine.py [--specialists 200] [--days 90] [--finds 200]
                                       [--bookings 200] [--backends sqlite,postgresql]

Each specialist (12 hospitals in 8 counties, 10 specialties) sits two mornings a week
(8 × 30-minute slots, capacity 2, 20 % reserved for referrals), so 200 × 90 days ≈ 40 000
slots, published in one unit of work (`TelemedicineService.publish_many`). `$find` queries
over a 30-day window: half specialty + county, a quarter specialty alone, a quarter specialty +
hospital. Bookings: sequential `$book` of slots found. Target: `$find` p95 ≤ 50 ms.
PostgreSQL: `HIE_BENCH_POSTGRES_URL` (a database URL) or a throwaway cluster (tests/pgcluster.py).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from ehr_store import SqlStore, StoreSettings, upgrade_schema
from hie_server.app import create_app
from hie_server.operations.telemedicine import telemedicine_module
from hie_server.settings import HieSettings
from telemedicine import ScheduleTemplate, SessionTemplate, TelemedicineService

ROOT = Path(__file__).resolve().parents[1]
SPECIALTIES = [
    ("03.04", "心血管内科"),
    ("03.01", "呼吸内科"),
    ("03.02", "消化内科"),
    ("04.01", "普通外科"),
    ("05", "妇产科"),
    ("07", "儿科"),
    ("12", "眼科"),
    ("13", "耳鼻咽喉科"),
    ("15", "皮肤科"),
    ("50", "中医科"),
]
COUNTIES = ["441802", "441803", "441821", "441823", "441825", "441826", "441881", "441882"]


def templates(n: int, rng: random.Random) -> list[ScheduleTemplate]:
    out = []
    for i in range(n):
        code, display = SPECIALTIES[i % len(SPECIALTIES)]
        days = rng.sample(range(5), 2)
        out.append(
            ScheduleTemplate(
                f"H{i % 12}-doc-{i}",
                f"org-H{i % 12}",
                {"system": "urn:qyhie:department", "code": code, "display": display},
                tuple(SessionTemplate(d, "morning", 30, 2, 0.2) for d in days),
                county=COUNTIES[i % 12 % len(COUNTIES)],
            )
        )
    return out


def database(backend: str) -> tuple[str, Callable[[], None]]:
    if backend == "sqlite":
        workdir = Path(tempfile.mkdtemp(prefix="bench-telemed-"))
        return f"sqlite:///{workdir / 'bench.db'}", lambda: shutil.rmtree(workdir, ignore_errors=True)
    url = os.environ.get("HIE_BENCH_POSTGRES_URL")
    if url:
        return url, lambda: None
    sys.path.insert(0, str(ROOT / "tests"))
    from pgcluster import ThrowawayCluster, create_database

    cluster = ThrowawayCluster(durable=False)
    return create_database(cluster.start()), cluster.stop


def find_params(rng: random.Random, first: date, days: int) -> tuple[str, dict[str, str]]:
    code = rng.choice(SPECIALTIES)[0]
    start = first + timedelta(days=rng.randrange(max(1, days - 30)))
    params = {
        "specialty": code,
        "start": start.isoformat(),
        "end": (start + timedelta(days=30)).isoformat(),
        "_count": "20",
    }
    shape = rng.choice(["specialty+county", "specialty+county", "specialty", "specialty+hospital"])
    if shape == "specialty+county":
        params["county"] = rng.choice(COUNTIES)
    elif shape == "specialty+hospital":
        params["organization"] = f"org-H{rng.randrange(12)}"
    return shape, params


def run(backend: str, args: argparse.Namespace) -> None:
    url, stop = database(backend)
    upgrade_schema(url)
    settings = HieSettings(store=StoreSettings(database_url=url))
    store = SqlStore(settings.store)
    service = TelemedicineService(store, settings.telemedicine)
    rng = random.Random(7)
    first = date.today() + timedelta(days=1)
    started = time.perf_counter()
    reports = service.publish_many(templates(args.specialists, rng), first, args.days)
    publish_s = time.perf_counter() - started
    slots = sum(len(r.created) for r in reports)
    with store.unit_of_work(write=True) as uow:
        for i in range(args.bookings):
            uow.resources.create(
                {"resourceType": "Patient", "meta": {"tag": [{"code": "golden"}]}}, id=f"B-{i}"
            )
        uow.commit()
    client = TestClient(create_app(settings, store, modules=[telemedicine_module(service)]))
    client.get("/fhir/Appointment/$find", params=find_params(rng, first, args.days)[1])  # warm-up
    cold = sorted(t for ts in finds(client, rng, first, args, 20, []).values() for t in ts)
    if backend == "postgresql":
        analyze(url)
    found: list[str] = []
    times = finds(client, rng, first, args, args.finds, found)
    ok = 0
    free = list(dict.fromkeys(found))
    t0 = time.perf_counter()
    for i in range(min(args.bookings, len(free))):
        body = {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "slot", "valueReference": {"reference": f"Slot/{free[i]}"}},
                {"name": "patient", "valueReference": {"reference": f"Patient/B-{i}"}},
            ],
        }
        ok += client.post("/fhir/Appointment/$book", json=body).status_code == 201
    book_s = time.perf_counter() - t0
    every = sorted(t for ts in times.values() for t in ts)
    print(
        f"[{backend}] slots published: {slots} ({args.specialists} specialists x {args.days} days) "
        f"in {publish_s:.1f} s ({slots / publish_s:.0f} slots/s, one unit of work)"
    )
    print(
        f"[{backend}] $find: p50 {statistics.median(every):.1f} ms, p95 {pct(every, 0.95):.1f} ms, "
        f"max {every[-1]:.1f} ms over {len(every)} queries, {len(found)} slots returned (target p95 <= 50 ms)"
    )
    note = ", then ANALYZE as autovacuum does within a minute" if backend == "postgresql" else ""
    print(
        f"[{backend}] $find right after the bulk publish (no planner statistics): p50 "
        f"{statistics.median(cold):.1f} ms, p95 {pct(cold, 0.95):.1f} ms over {len(cold)} queries{note}"
    )
    for shape, ts in sorted(times.items()):
        ts.sort()
        print(
            f"[{backend}]   {shape:20s} p50 {statistics.median(ts):5.1f} ms  p95 {pct(ts, 0.95):5.1f} ms  "
            f"({len(ts)} queries)"
        )
    print(f"[{backend}] bookings: {ok} in {book_s:.2f} s = {ok / book_s:.0f} bookings/s (sequential)")
    service.close()
    store.close()
    stop()


def finds(
    client: TestClient, rng: random.Random, first: date, args: argparse.Namespace, n: int, found: list[str]
) -> dict[str, list[float]]:
    """Run `n` random `$find` queries; milliseconds per query shape; slot ids into `found`."""
    times: dict[str, list[float]] = {}
    for _ in range(n):
        shape, params = find_params(rng, first, args.days)
        t0 = time.perf_counter()
        r = client.get("/fhir/Appointment/$find", params=params)
        times.setdefault(shape, []).append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, r.text
        found += [e["resource"]["id"] for e in r.json().get("entry", [])]
    return times


def analyze(url: str) -> None:
    """PostgreSQL: planner statistics now (autovacuum would collect them within a minute)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()


def pct(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return sorted_ms[max(0, math.ceil(len(sorted_ms) * q) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--specialists", type=int, default=200)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--finds", type=int, default=200)
    ap.add_argument("--bookings", type=int, default=200)
    ap.add_argument("--backends", default="sqlite,postgresql")
    args = ap.parse_args()
    for backend in args.backends.split(","):
        run(backend.strip(), args)


if __name__ == "__main__":
    main()
