"""Workbench page times at scale: about N synthetic resources in a SQLite store, `hie serve` on it,
the main pages fetched as the local operator (loopback, no identity provider), p50/p95 ms per page.

Data: `bench_workbench_load.py` (written through the store's bulk path: Qingyuan counties, 12
facilities, visits over a year, seasonal influenza-like illness, notifiable cases with their report
Tasks, lab trends, chronic patients, 5 % AuditEvents; EMPI records in bulk), then 300 near-duplicate
Patients through the real EMPI (review queue), 200 specialists' published clinics (14 days,
`TelemedicineService.publish_many`), `--messages` archived HL7 messages over 12 facilities (one in 50
in the error queue) and `ANALYZE`.

Pages: resident search by name, pinyin, 身份证号 and phone; resident summary (and a chronic
patient's); booking with free slots; CDC dashboard (12 weeks); admin feeds; EMPI review queue;
audit search (by resident, by user and day, latest). Each page is fetched `--repeat` + 1 times
(the first shown apart) with a different resident where it takes one.

Usage: `.venv/bin/python bench/bench_workbench.py [--n 1000000] [--repeat 20] [--keep DIR]`
(`--db sqlite:///path` reuses a loaded database, `--only "CDC dashboard,admin feeds"`; `--cdc`
adds the CDC dashboard right after a write (with the server's CPU per view), during continuous
ingestion (`--ingest-interval`), and the first view of a restarted server).

Measured 2026-11-29, shared 2-core machine, `--n 1000000` (loaded in 194 s, 5,150 resources/s;
45,738 residents), load average 3.0-3.4, p50 / p95 ms (first fetch): search name 8 / 19, pinyin
8 / 12, 身份证号 4 / 5, phone 3 / 13; resident summary 286 / 409 (289); chronic summary 346 / 471
(711); booking (slots) 138 / 322; CDC dashboard 192 / 608 (3,448 cold server; before the indexed
aggregates 3,307 / 4,472); admin feeds 127 / 219; EMPI review queue 71 / 105; audit by resident
7 / 80, by user and day 11 / 22, latest 139 / 436.
CDC dashboard with the surveillance read model (`resource_fact`, `--only "CDC dashboard" --cdc`),
p50 / p95 ms, SQLite at load 1.8 / PostgreSQL (`--postgres`) at load 2.4-2.6: repeated 18 / 19 and
22 / 34; first view after a write 219 / 486 and 320 / 624 (server CPU 240 and 255 ms a view;
before: ~1 s CPU, ~1.5 s wall); during ingestion (a visit every 0.2 s) 165 / 414 and 384 / 731;
first view of a restarted server 254 and 582 (186 and 212 after 5 s; before 2.4-3.4 s). In
process, CPU at 1M (12 weeks): cases 0.09 s (indexed aggregates 0.30 s, paged 1.2 s), ILI share
0.11 s (0.7 s, paged ~10 s); the read model's first build 6.3 s CPU (19.5 s wall) for 199,942 rows
on SQLite, later refreshes 2-3 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "tests"))

import bench_workbench_load as bulkload  # noqa: E402
from bench_search import FAMILIES, GIVEN, resident_id  # noqa: E402
from bench_telemedicine import templates  # noqa: E402
from e2e_harness import start_server  # noqa: E402
from pgcluster import ThrowawayCluster, create_database  # noqa: E402

from ehr_store import IncomingMessage, MessageOutcome, SqlStore, StoreSettings, upgrade_schema  # noqa: E402
from ehr_store.empi import EmpiService, load_rules  # noqa: E402
from hie_server.settings import HieSettings  # noqa: E402
from telemedicine import TelemedicineService  # noqa: E402

PER_RESIDENT = bulkload.PER_RESIDENT


def review_pairs(store: SqlStore, empi: EmpiService, count: int) -> int:
    """`count` near-duplicates (same name, sex and birth date as a loaded resident, no 身份证号,
    another phone) through `EmpiService.on_source_patient` as ingestion does: each either links or
    lands in the review queue. Returns the open review items."""
    with store.unit_of_work(write=True) as uow:
        for k in range(count):
            n = 1 + k * 97
            src = next(bulkload.resident(n, datetime.now(UTC)))
            dup = {**src, "id": f"dup{k}", "identifier": [{"system": "urn:qyhie:mrn:H3", "value": f"D{k}"}],
                   "telecom": [{"system": "phone", "value": f"1390000{k:04d}"}],
                   "meta": {"source": "urn:qyhie:facility:H3"}}
            empi.on_source_patient(uow.resources, uow.resources.create(dup, id=dup["id"]))
        uow.commit()
        return len(empi.index(uow.resources).reviews(status="open", limit=count))


def archive(store: SqlStore, count: int) -> None:
    """`count` archived messages over 12 facilities, one in 50 left in the error queue."""
    for first in range(0, count, 5000):
        with store.unit_of_work(write=True) as uow:
            incoming = [
                IncomingMessage(
                    f"MSH|^~\\&|HIS|H{i % 12}|HIE|QY|20261129||ADT^A08|M{i}|P|2.5\r".encode(),
                    "mllp",
                    "127.0.0.1",
                    "HIS",
                    f"H{i % 12}",
                    f"M{i}",
                    "ADT^A08",
                    "UTF-8",
                )
                for i in range(first, min(count, first + 5000))
            ]
            added = uow.messages.add_many(incoming)
            uow.messages.finish_many(
                [
                    MessageOutcome(
                        m.id,
                        "error" if m.id % 50 == 0 else "processed",
                        b"MSA|AA",
                        "AA",
                        "PID-3 missing" if m.id % 50 == 0 else None,
                    )
                    for m in added
                ]
            )
            uow.commit()


def prepare(url: str, n: int, batch: int, messages: int, clinics: bool = True) -> int:
    """Load about `n` resources (5 % of them AuditEvents) and, with `clinics`, the published
    clinics of the booking page (publish_many's `Slot?schedule=` searches took 2-4 s each on
    PostgreSQL at 1M with statistics predating the Slots, ~1 ms since `sql_probe.py`); returns
    the number of residents."""
    upgrade_schema(url)
    settings = HieSettings(store=StoreSettings(database_url=url))
    store = SqlStore(settings.store)
    try:
        started = time.perf_counter()
        rules = load_rules(settings.empi)
        residents = bulkload.load(store, rules, n, batch=batch, audits=n // 20)
        loaded = time.perf_counter() - started
        print(f"loaded {n:,} resources ({residents:,} residents) in {loaded:.0f} s ({n / loaded:,.0f}/s)",
              flush=True)
        print(f"EMPI review queue: {review_pairs(store, EmpiService(rules), 300)} open items", flush=True)
        if clinics:
            TelemedicineService(store, settings.telemedicine).publish_many(
                templates(200, random.Random(7)), date.today() + timedelta(days=1), 14
            )
        archive(store, messages)
    finally:
        store.close()
    analyze(url)
    return residents


def analyze(url: str) -> None:
    """Planner statistics, as after any bulk load: without them SQLite plans date-range searches
    badly (measured at 20k: Encounter?class=AMB&date=ge&date=le 530 ms -> 60 ms)."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute("ANALYZE")
        return
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    engine.dispose()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))]


def pages(residents: int, rng: random.Random) -> dict[str, Any]:
    """Page name -> a function of the fetch number giving the path."""

    def pick() -> int:
        return rng.randrange(residents)

    def by_name(_: int) -> str:
        n = pick()
        return f"/workbench/residents?q={FAMILIES[n % len(FAMILIES)]}{GIVEN[n // 20 % len(GIVEN)]}"

    def by_pinyin(_: int) -> str:
        from pypinyin import lazy_pinyin

        n = pick()
        return f"/workbench/residents?q={''.join(lazy_pinyin(FAMILIES[n % 20] + GIVEN[n // 20 % 15]))}"

    return {
        "search name": by_name,
        "search pinyin": by_pinyin,
        "search 身份证号": lambda _: f"/workbench/residents?q={resident_id(pick())}",
        "search phone": lambda _: f"/workbench/residents?q={bulkload.phone(pick())}",
        "resident summary": lambda _: f"/workbench/residents/p{pick()}",
        "summary (chronic)": lambda i: f"/workbench/residents/p{7 + 5000 * (i % max(1, residents // 5000))}",
        "booking (slots)": lambda _: f"/workbench/booking?patient=p{pick()}&find=1",
        "CDC dashboard": lambda _: "/workbench/cdc",
        "admin feeds": lambda _: "/workbench/admin/feeds",
        "EMPI review queue": lambda _: "/workbench/admin/empi",
        "audit (patient)": lambda _: f"/workbench/admin/audit?patient=Patient/p{pick()}",
        "audit (user, day)": lambda i: (
            f"/workbench/admin/audit?agent-name=doctor{i % 300:03d}&date={date.today()}"
        ),
        "audit (latest)": lambda _: "/workbench/admin/audit",
    }


def loaded_residents(url: str) -> int:
    """Residents of a database loaded by this script (source Patients `p<n>`)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            query = "SELECT count(*) FROM empi_record WHERE source_id LIKE 'p%'"
            return int(conn.execute(sa.text(query)).scalar_one())
    finally:
        engine.dispose()


def measure(base: str, residents: int, repeat: int, only: set[str] | None = None) -> None:
    rng = random.Random(11)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with httpx.Client(base_url=base, timeout=120, follow_redirects=True) as client:
        assert client.get("/workbench/login").status_code == 200, "local operator sign-in"
        print(
            f"{'page':<20} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'first':>8}  (n={repeat} after it)"
        )
        for name, path_for in pages(residents, rng).items():
            if only and name not in only:
                continue
            times = []
            for i in range(repeat + 1):
                started = time.perf_counter()
                answer = client.get(path_for(i))
                elapsed = (time.perf_counter() - started) * 1000
                assert answer.status_code == 200, (name, answer.status_code, answer.text[-500:])
                if name.startswith("search"):  # the page found the resident (a link to the summary)
                    assert "/workbench/residents/" in answer.text.split("<main", 1)[1], (
                        name,
                        answer.text[-800:],
                    )
                if i:
                    times.append(elapsed)
                else:
                    first = elapsed
            print(
                f"{name:<20} {statistics.median(times):8.0f} {pct(times, 0.95):8.0f} {max(times):8.0f}"
                f" {first:8.0f}",
                flush=True,
            )


def visit(n: int) -> list[dict[str, Any]]:
    """An outpatient Encounter today and its influenza Condition (J11.1, notifiable and ILI) for
    loaded resident `p<n>`: what a dashboard view after ingestion has to count."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    enc = {"resourceType": "Encounter", "status": "finished", "subject": {"reference": f"Patient/p{n}"},
           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
           "period": {"start": now}}
    cond = {"resourceType": "Condition", "subject": {"reference": f"Patient/p{n}"}, "recordedDate": now,
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "J11.1"}]}}
    return [enc, cond]


def write_visit(client: httpx.Client, base: str, n: int) -> None:
    """`visit(n)` through the FHIR API (the Condition references the new Encounter)."""
    enc, cond = visit(n)
    made = client.post(f"{base}/Encounter", json=enc)
    assert made.status_code == 201, made.text[-500:]
    cond["encounter"] = {"reference": f"Encounter/{made.json()['id']}"}
    assert client.post(f"{base}/Condition", json=cond).status_code == 201


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) the server process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cdc_after_writes(base: str, residents: int, repeat: int, interval: float, pid: int) -> None:
    """The CDC dashboard right after a write, `repeat` times (each view preceded by a new
    Encounter and ILI Condition), then `repeat` views while another thread keeps writing one
    such pair every `interval` s (continuous ingestion: every view finds new writes)."""
    import threading

    page = base.removesuffix("/fhir")
    rng = random.Random(5)
    with httpx.Client(timeout=120, follow_redirects=True) as client:
        assert client.get(f"{page}/workbench/login").status_code == 200, "local operator sign-in"
        times, cpu = [], []
        for _ in range(repeat):
            write_visit(client, base, rng.randrange(residents))
            time.sleep(0.05)  # the write's own audit and WAL work done
            started, used = time.perf_counter(), server_cpu(pid)
            assert client.get(f"{page}/workbench/cdc").status_code == 200
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((server_cpu(pid) - used) * 1000)
        p50, p95 = statistics.median(times), pct(times, 0.95)
        print(f"{'CDC after a write':<20} {p50:8.0f} {p95:8.0f} {max(times):8.0f}  "
              f"(server CPU p50 {statistics.median(cpu):.0f} ms)", flush=True)
        stop = threading.Event()
        written = [0]

        def ingest() -> None:
            with httpx.Client(timeout=120) as writer:
                while not stop.is_set():
                    write_visit(writer, base, rng.randrange(residents))
                    written[0] += 1
                    stop.wait(interval)

        thread = threading.Thread(target=ingest)
        thread.start()
        try:
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                assert client.get(f"{page}/workbench/cdc").status_code == 200
                times.append((time.perf_counter() - started) * 1000)
        finally:
            stop.set()
            thread.join()
        print(f"{'CDC under ingestion':<20} {statistics.median(times):8.0f} {pct(times, 0.95):8.0f} "
              f"{max(times):8.0f}  ({written[0]} visits written meanwhile)", flush=True)


def cdc_after_restart(workdir: Path, url: str, waits: tuple[float, ...] = (0.0, 5.0)) -> None:
    """The first CDC dashboard view of a freshly started server: as soon as it answers, and
    `waits` s later (after the background read-model catch-up and default-period warm-up)."""
    for wait in waits:
        server = start_server(workdir, {}, url)
        try:
            time.sleep(wait)
            home = server.base.removesuffix("/fhir")
            with httpx.Client(base_url=home, timeout=120, follow_redirects=True) as client:
                assert client.get("/workbench/login").status_code == 200, "local operator sign-in"
                started = time.perf_counter()
                assert client.get("/workbench/cdc").status_code == 200
                first = (time.perf_counter() - started) * 1000
                started = time.perf_counter()
                assert client.get("/workbench/cdc").status_code == 200
                second = (time.perf_counter() - started) * 1000
            print(f"CDC after restart (+{wait:.0f} s): first {first:.0f}, then {second:.0f} ms", flush=True)
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="resources to load")
    parser.add_argument("--batch", type=int, default=20_000, help="resources per unit of work")
    parser.add_argument("--messages", type=int, default=20_000, help="archived HL7 messages")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--db", help="a loaded database URL to reuse (skips loading)")
    parser.add_argument("--postgres", action="store_true",
                        help="load into a throwaway PostgreSQL cluster (tests/pgcluster.py, fsync on)")
    parser.add_argument("--keep", help="directory for the database (kept afterwards)")
    parser.add_argument("--only", help="comma-separated page names to fetch (default: all)")
    parser.add_argument("--cdc", action="store_true",
                        help="also: CDC dashboard after writes, under ingestion, after restarts")
    parser.add_argument("--ingest-interval", type=float, default=0.2,
                        help="seconds between written visits during --cdc's ingestion phase")
    args = parser.parse_args()
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="bench-wb-"))
    workdir.mkdir(parents=True, exist_ok=True)
    url = args.db or f"sqlite:///{workdir / 'hie.db'}"
    cluster = ThrowawayCluster(durable=True) if args.postgres and not args.db else None
    if cluster is not None:
        url = create_database(cluster.start(), "bench_workbench")
    try:
        if args.db:
            upgrade_schema(url)  # a database loaded before a migration
        only = set(args.only.split(",")) if args.only else None
        clinics = only is None or "booking (slots)" in only
        residents = (
            prepare(url, args.n, args.batch, args.messages, clinics) if not args.db else loaded_residents(url)
        )
        server = start_server(workdir, {}, url)
        try:
            measure(server.base.removesuffix("/fhir"), residents, args.repeat, only)
            if args.cdc:
                pid = server.process.pid
                cdc_after_writes(server.base, residents, args.repeat, args.ingest_interval, pid)
        finally:
            server.stop()
        if args.cdc:
            cdc_after_restart(workdir, url)
    finally:
        if cluster is not None:
            cluster.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
