"""Workbench page times at scale: N synthetic resources in a SQLite store, `hie serve` on it, the
main pages fetched as the local operator (loopback, no identity provider), p50/p95 ms per page.

Data (synthetic; loaded through the store API, `store.unit_of_work(write=True)` with
`uow.resources.prefetch` + `create`, `--batch` resources per unit of work, no HL7): per resident
1 Patient (name, 身份证号, phone, home county), 2 outpatient Encounters, 1 Condition (one in 20 a
notifiable disease, diagnosis dates over the last two years), 13 lab Observations, 1
AllergyIntolerance, 2 Immunizations: 20 resources a resident. Plus 200 specialists' published
clinics (14 days, `TelemedicineService.publish_many`) and `--messages` archived HL7 messages over
12 facilities (one in 50 in the error queue).

Pages: resident search by name, pinyin, 身份证号 and phone; resident summary; booking with free
slots; CDC dashboard (12 weeks); admin feeds. Each page is fetched `--repeat` times (first fetch
not counted) with a different resident where it takes one.

Usage: `.venv/bin/python bench/bench_workbench.py [--n 1000000] [--repeat 20] [--keep DIR]`
(`--db sqlite:///path` reuses a loaded database and skips loading).

Measured 2026-11-29, shared 2-core machine (load average 4-6), `--n 200000` (1M not run: the
EMPI-linked load runs at ~1,300 resources/s, 151 s for 200k), p50 / p95 ms: search name 7 / 11,
pinyin 7 / 10, 身份证号 4 / 7, phone 3 / 5; resident summary 194 / 209; booking (slots) 88 / 95;
CDC dashboard 296 / 545 (before the ILI-share fix 1246 / 1621); admin feeds 90 / 106 (before
`received_since` 690 / 1805).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from bench_search import FAMILIES, GIVEN, resident_id  # noqa: E402
from bench_telemedicine import templates  # noqa: E402
from e2e_harness import start_server  # noqa: E402

from ehr_store import IncomingMessage, MessageOutcome, SqlStore, StoreSettings, upgrade_schema  # noqa: E402
from ehr_store.empi import EmpiService, load_rules  # noqa: E402
from hie_server.settings import HieSettings  # noqa: E402
from telemedicine import TelemedicineService  # noqa: E402

RID = "urn:oid:2.16.156.10011.1.3"
PER_RESIDENT = 20
COUNTIES = ["441802", "441803", "441821", "441823", "441825", "441826", "441881", "441882"]
LABS = [("718-7", "g/dL"), ("2345-7", "mmol/L"), ("2160-0", "umol/L"), ("6690-2", "10*9/L")]
NOTIFIABLE = [("A09", "感染性腹泻"), ("J11.1", "流行性感冒"), ("A15.0", "肺结核"), ("B01.9", "水痘")]
OTHER = [("I10", "原发性高血压"), ("E11.9", "2型糖尿病"), ("J20.9", "急性支气管炎"), ("K29.7", "胃炎")]
LAB_CAT = {
    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]
}


def phone(n: int) -> str:
    return f"138{n:08d}"


def resident(n: int, now: datetime) -> Iterator[dict[str, Any]]:
    """The 20 resources of resident n (ids derived from n)."""
    pid = f"p{n}"
    subject = {"reference": f"Patient/{pid}"}
    yield {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": RID, "value": resident_id(n)}],
        "name": [{"family": FAMILIES[n % len(FAMILIES)], "given": [GIVEN[n // 20 % len(GIVEN)]]}],
        "gender": "male" if n % 2 else "female",
        "birthDate": f"{1940 + n % 70}-{1 + n % 12:02d}-{1 + n % 28:02d}",
        "telecom": [{"system": "phone", "value": phone(n)}],
        "address": [{"use": "home", "city": "清远市", "district": COUNTIES[n % len(COUNTIES)]}],
    }
    days = [(n * 37 + k * 113) % 730 for k in range(2)]
    for k, back in enumerate(days):
        when = now - timedelta(days=back, hours=k)
        yield {
            "resourceType": "Encounter",
            "id": f"e{n}-{k}",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": subject,
            "period": {"start": when.isoformat(), "end": (when + timedelta(minutes=20)).isoformat()},
        }
    code, name = NOTIFIABLE[n // 20 % 4] if n % 20 == 0 else OTHER[n % 4]
    yield {
        "resourceType": "Condition",
        "id": f"c{n}",
        "clinicalStatus": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
            ]
        },
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": code, "display": name}]},
        "subject": subject,
        "encounter": {"reference": f"Encounter/e{n}-0"},
        "recordedDate": (now - timedelta(days=days[0])).isoformat(),
    }
    for k in range(13):
        loinc, unit = LABS[k % len(LABS)]
        yield {
            "resourceType": "Observation",
            "id": f"o{n}-{k}",
            "status": "final",
            "category": [LAB_CAT],
            "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
            "subject": subject,
            "effectiveDateTime": (now - timedelta(days=(n + k * 53) % 730)).isoformat(),
            "valueQuantity": {"value": round(3 + (n * 7 + k) % 120 / 10, 1), "unit": unit},
        }
    yield {
        "resourceType": "AllergyIntolerance",
        "id": f"a{n}",
        "patient": subject,
        "code": {"text": "青霉素"},
        "recordedDate": (now - timedelta(days=n % 900)).date().isoformat(),
    }
    for k in range(2):
        yield {
            "resourceType": "Immunization",
            "id": f"i{n}-{k}",
            "status": "completed",
            "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": ("140", "08")[k]}]},
            "patient": subject,
            "occurrenceDateTime": (now - timedelta(days=(n + 300 * k) % 3000)).isoformat(),
        }


def load(store: SqlStore, empi: EmpiService, residents: int, batch: int) -> None:
    """Residents in units of `batch` resources (prefetched, as transaction Bundles do); each
    Patient goes through the EMPI as ingestion does (`on_source_patient`: resident record)."""
    now = datetime.now(UTC).replace(microsecond=0)
    started, chunk = time.perf_counter(), []

    def flush() -> None:
        with store.unit_of_work(write=True) as uow:
            uow.resources.prefetch((d["resourceType"], d["id"]) for d in chunk)
            for doc in chunk:
                stored = uow.resources.create(doc, id=doc["id"])
                if doc["resourceType"] == "Patient":
                    empi.on_source_patient(uow.resources, stored)
            uow.commit()
        chunk.clear()

    for n in range(residents):
        chunk.extend(resident(n, now))
        if len(chunk) >= batch:
            flush()
        if n and n % 10000 == 0:
            done = n * PER_RESIDENT
            print(f"  {done:,} resources, {done / (time.perf_counter() - started):,.0f}/s", flush=True)
    if chunk:
        flush()


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


def prepare(url: str, n: int, batch: int, messages: int) -> None:
    upgrade_schema(url)
    settings = HieSettings(store=StoreSettings(database_url=url))
    store = SqlStore(settings.store)
    try:
        started = time.perf_counter()
        load(store, EmpiService(load_rules(settings.empi)), max(1, n // PER_RESIDENT), batch)
        loaded = time.perf_counter() - started
        print(f"loaded {n:,} resources in {loaded:.0f} s ({n / loaded:,.0f}/s)", flush=True)
        TelemedicineService(store, settings.telemedicine).publish_many(
            templates(200, random.Random(7)), date.today() + timedelta(days=1), 14
        )
        archive(store, messages)
    finally:
        store.close()
    # Planner statistics, as after any bulk load: without them SQLite plans date-range searches
    # badly (measured at 20k: Encounter?class=AMB&date=ge&date=le 530 ms -> 60 ms).
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        conn.execute("ANALYZE")


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
        "search phone": lambda _: f"/workbench/residents?q={phone(pick())}",
        "resident summary": lambda _: f"/workbench/residents/p{pick()}",
        "booking (slots)": lambda _: f"/workbench/booking?patient=p{pick()}&find=1",
        "CDC dashboard": lambda _: "/workbench/cdc",
        "admin feeds": lambda _: "/workbench/admin/feeds",
    }


def measure(base: str, residents: int, repeat: int) -> None:
    rng = random.Random(11)
    with httpx.Client(base_url=base, timeout=120, follow_redirects=True) as client:
        assert client.get("/workbench/login").status_code == 200, "local operator sign-in"
        print(
            f"{'page':<20} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  (n={repeat}, first fetch not counted)"
        )
        for name, path_for in pages(residents, rng).items():
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
            print(
                f"{name:<20} {statistics.median(times):8.0f} {pct(times, 0.95):8.0f} {max(times):8.0f}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="resources to load")
    parser.add_argument("--batch", type=int, default=2000, help="resources per unit of work")
    parser.add_argument("--messages", type=int, default=20_000, help="archived HL7 messages")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--db", help="a loaded SQLite URL to reuse (skips loading)")
    parser.add_argument("--keep", help="directory for the database (kept afterwards)")
    args = parser.parse_args()
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="bench-wb-"))
    workdir.mkdir(parents=True, exist_ok=True)
    url = args.db or f"sqlite:///{workdir / 'hie.db'}"
    try:
        if not args.db:
            prepare(url, args.n, args.batch, args.messages)
        server = start_server(workdir, {}, url)
        try:
            measure(server.base.removesuffix("/fhir"), max(1, args.n // PER_RESIDENT), args.repeat)
        finally:
            server.stop()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
