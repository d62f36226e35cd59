"""Benchmark: `$find` p95 and bookings/s with N specialists × D days of slots (SQLite, in-process ASGI).

    python bench/bench_telemedicine.py [--specialists 200] [--days 90] [--finds 200] [--bookings 200]

Each specialist sits two mornings a week (8 × 30-minute slots, capacity 2, 20 % reserved for
referrals), so 200 × 90 days ≈ 41 000 slots. Prints publish time, `$find` p50/p95 (specialty +
county filter, 30-day window) and sequential bookings per second. Target: `$find` p95 ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from ehr_store import SqlStore, StoreSettings, upgrade_schema
from hie_server.app import create_app
from hie_server.operations.telemedicine import telemedicine_module
from hie_server.settings import HieSettings
from telemedicine import ScheduleTemplate, SessionTemplate, TelemedicineService

SPECIALTIES = [("03.04", "心血管内科"), ("03.01", "呼吸内科"), ("03.02", "消化内科"), ("04.01", "普通外科"),
               ("05", "妇产科"), ("07", "儿科"), ("12", "眼科"), ("13", "耳鼻咽喉科"), ("15", "皮肤科"), ("50", "中医科")]
COUNTIES = ["441802", "441803", "441821", "441823", "441825", "441826", "441881", "441882"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--specialists", type=int, default=200)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--finds", type=int, default=200)
    ap.add_argument("--bookings", type=int, default=200)
    args = ap.parse_args()
    url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    upgrade_schema(url)
    settings = HieSettings(store=StoreSettings(database_url=url))
    store = SqlStore(settings.store)
    service = TelemedicineService(store, settings.telemedicine)
    rng = random.Random(7)
    first = date.today() + timedelta(days=1)
    started = time.perf_counter()
    slots = 0
    for n in range(args.specialists):
        code, display = SPECIALTIES[n % len(SPECIALTIES)]
        days = rng.sample(range(5), 2)
        t = ScheduleTemplate(f"H{n % 12}-doc-{n}", f"org-H{n % 12}", {"system": "urn:qyhie:department", "code": code,
                             "display": display}, tuple(SessionTemplate(d, "morning", 30, 2, 0.2) for d in days),
                             county=COUNTIES[n % 12 % len(COUNTIES)])
        slots += len(service.publish(t, first, args.days).created)
    publish_s = time.perf_counter() - started
    with store.unit_of_work(write=True) as uow:
        for i in range(args.bookings):
            uow.resources.create({"resourceType": "Patient", "meta": {"tag": [{"code": "golden"}]}}, id=f"B-{i}")
        uow.commit()
    client = TestClient(create_app(settings, store, modules=[telemedicine_module(service)]))
    times = []
    found = []
    for _ in range(args.finds):
        code = rng.choice(SPECIALTIES)[0]
        start = first + timedelta(days=rng.randrange(max(1, args.days - 30)))
        params = {"specialty": code, "start": start.isoformat(), "end": (start + timedelta(days=30)).isoformat(),
                  "county": rng.choice(COUNTIES)[:6], "_count": "20"}
        t0 = time.perf_counter()
        r = client.get("/fhir/Appointment/$find", params=params)
        times.append((time.perf_counter() - t0) * 1000)
        found += [e["resource"]["id"] for e in r.json().get("entry", [])]
    times.sort()
    ok = 0
    free = list(dict.fromkeys(found))
    t0 = time.perf_counter()
    for i in range(min(args.bookings, len(free))):
        body = {"resourceType": "Parameters", "parameter": [
            {"name": "slot", "valueReference": {"reference": f"Slot/{free[i]}"}},
            {"name": "patient", "valueReference": {"reference": f"Patient/B-{i}"}}]}
        ok += client.post("/fhir/Appointment/$book", json=body).status_code == 201
    book_s = time.perf_counter() - t0
    print(f"slots published: {slots} ({args.specialists} specialists x {args.days} days) in {publish_s:.1f} s")
    print(f"$find: p50 {statistics.median(times):.1f} ms, p95 {times[int(len(times) * 0.95) - 1]:.1f} ms "
          f"over {len(times)} queries (target p95 <= 50 ms)")
    print(f"bookings: {ok} in {book_s:.2f} s = {ok / book_s:.0f} bookings/s (sequential, SQLite)")
    service.close()
    store.close()


if __name__ == "__main__":
    main()
