"""`BulkExporter`: export jobs kicked off over REST, run by one background thread in the server.

Lifecycle (FHIR Bulk Data Access v2.0 §"Bulk Data Kick-off Request" … §"File Request"):
`kick_off` records the job (status `accepted`, `transactionTime` = now, taken at kick-off) in
the store's `bulk_export_job` table and queues it; the worker thread streams the snapshot as of
`transactionTime` (`ehr_store.stream_snapshot`: keyset pages sized by bytes, flat memory),
applies the Group/Patient scope and `_typeFilter`, writes NDJSON files, and completes the job
with its manifest. `cancel` stops a running job and removes its files; completed jobs expire
after `BulkSettings.expire_minutes` (files and record removed). Jobs left `accepted` or
`in-progress` by a stopped server are run again by `start()` with their original
`transactionTime`, so the manifest stays consistent.

May import: the standard library, orjson, `ehr_store`, `hie_server.auth` (compartment),
`hie_server.bulk.*`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from ehr_store import (
    ExportJob,
    ExportRow,
    Forbidden,
    Gone,
    NotFound,
    ResourceMatcher,
    Store,
    StoreSettings,
    TooCostly,
    export_jobs,
    format_instant,
    stream_snapshot,
)
from hie_server.auth.compartment import patient_refs
from hie_server.bulk.files import FILE_NAME, TypeWriter, job_directory, remove_job_files
from hie_server.bulk.request import ExportRequest
from hie_server.bulk.settings import BulkSettings

log = logging.getLogger("hie_server.bulk")
ACTIVE = ("accepted", "in-progress")
PROGRESS_EVERY = 5000


class Cancelled(Exception):
    """The job was cancelled while running."""


class BulkExporter:
    """Export jobs over one store (see module docstring). Thread-safe."""

    def __init__(
        self,
        store: Store,
        settings: BulkSettings,
        store_settings: StoreSettings,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.store_settings = store_settings
        self.root = Path(settings.directory)
        self.jobs = export_jobs(store)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._cancelled: set[str] = set()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker thread (idempotent) and queue jobs a stopped server left unfinished."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._work, name="bulk-export", daemon=True)
            self._thread.start()
        for job in self.jobs.list(ACTIVE):
            self._queue.put(job.id)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the worker to stop after the current job and wait for it."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout)
        self._thread = None

    def _now(self) -> datetime:
        now = self._clock()
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    # -- requests -------------------------------------------------------------------------------
    def kick_off(self, owner: str, request: ExportRequest) -> ExportJob:
        """Record and queue a job; `transactionTime` is now. Raises: TooCostly (too many open jobs)."""
        self.purge_expired()
        open_jobs = [j for j in self.jobs.list(ACTIVE) if j.owner == owner]
        if len(open_jobs) >= self.settings.max_jobs_per_owner:
            raise TooCostly(f"{len(open_jobs)} exports of yours are still running; wait or cancel one")
        now = self._now()
        # Versions carry millisecond timestamps: a write in the kick-off's own millisecond may come
        # after it, so transactionTime is the millisecond before. Such writes then fall in the next
        # `_since=transactionTime` export (strictly later), never in this one; nothing is lost.
        transaction_time = now - timedelta(milliseconds=1)
        job = ExportJob(
            uuid.uuid4().hex,
            owner,
            "accepted",
            request.to_json(),
            transaction_time,
            now,
            now,
            progress="queued",
        )
        self.jobs.add(job)
        self.start()
        self._queue.put(job.id)
        return job

    def job_for(self, job_id: str, owner: str, *, admin: bool = False) -> ExportJob:
        """The job when `owner` kicked it off (or `admin`). Raises: NotFound (unknown, cancelled or
        expired), Forbidden (someone else's job)."""
        self.purge_expired()
        job = self.jobs.get(job_id)
        if job.status == "cancelled":
            raise NotFound(f"export {job_id} was cancelled")
        if job.owner != owner and not admin:
            raise Forbidden("access refused by rule 'bulk-owner': only who kicked off an export may use it")
        return job

    def cancel(self, job_id: str, owner: str, *, admin: bool = False) -> None:
        """Stop a job (running or finished) and delete its files. Raises: NotFound, Forbidden."""
        self.job_for(job_id, owner, admin=admin)
        self._cancelled.add(job_id)
        self.jobs.update(job_id, status="cancelled", updated_at=self._now(), progress="cancelled")
        remove_job_files(self.root, job_id)

    def file_path(self, job_id: str, name: str, owner: str, *, admin: bool = False) -> Path:
        """Path of an output file of a completed job. Raises: NotFound, Forbidden, Gone (expired)."""
        job = self.job_for(job_id, owner, admin=admin)
        names = {o["url"].rsplit("/", 1)[-1] for o in (job.output or {}).get("output", [])}
        if job.status != "completed" or not FILE_NAME.match(name) or name not in names:
            raise NotFound(f"export {job_id} has no file {name}")
        path = self.root / job_id / name
        if not path.is_file():
            raise Gone(f"file {name} of export {job_id} is no longer available")
        return path

    def purge_expired(self) -> list[str]:
        """Remove completed/failed jobs past `expires_at` and cancelled ones (files and records)."""
        now = self._now()
        gone = [
            j.id
            for j in self.jobs.list(("completed", "error", "cancelled"))
            if (j.status == "cancelled" and j.updated_at < now - timedelta(minutes=5))
            or (j.expires_at is not None and j.expires_at <= now)
        ]
        for job_id in gone:
            remove_job_files(self.root, job_id)
            self.jobs.delete(job_id)
        return gone

    # -- the worker -----------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            try:
                self.run(job_id)
            except Exception:
                log.exception("bulk export %s failed", job_id)

    def run(self, job_id: str) -> None:
        """Run one job to completion (the worker calls this; tests may call it directly)."""
        job = self.jobs.get(job_id)
        if job.status not in ACTIVE or job_id in self._cancelled:
            return
        wait = job.transaction_time + timedelta(seconds=self.settings.settle_seconds) - self._clock()
        if wait.total_seconds() > 0:
            time.sleep(wait.total_seconds())
        if job_id in self._cancelled or self.jobs.get(job_id).status == "cancelled":
            return
        self.jobs.update(job_id, status="in-progress", updated_at=self._now(), progress="started")
        remove_job_files(self.root, job_id)  # a resumed job starts over
        try:
            manifest = self._export(job, ExportRequest.from_json(job.request))
        except Cancelled:
            remove_job_files(self.root, job_id)
            return
        except Exception as exc:
            remove_job_files(self.root, job_id)
            self.jobs.update(
                job_id,
                status="error",
                error=str(exc)[:2000],
                updated_at=self._now(),
                expires_at=self._now() + timedelta(minutes=self.settings.expire_minutes),
            )
            raise
        if job_id in self._cancelled or self.jobs.get(job_id).status == "cancelled":
            remove_job_files(self.root, job_id)
            return
        done = self._now()
        self.jobs.update(
            job_id,
            status="completed",
            output=manifest,
            updated_at=done,
            progress="100%",
            expires_at=done + timedelta(minutes=self.settings.expire_minutes),
        )

    def _export(self, job: ExportJob, request: ExportRequest) -> dict[str, Any]:
        directory = job_directory(self.root, job.id)
        members = self._members(request, job.transaction_time)
        matchers = {
            t: [ResourceMatcher(t, q, self.store_settings) for q in qs]
            for t, qs in request.type_filters.items()
        }
        outputs: list[dict[str, Any]] = []
        written = 0
        for index, rtype in enumerate(request.types):
            writer = TypeWriter(
                directory, rtype, compress=request.compress, max_resources=self.settings.file_max_resources
            )
            try:
                for row in self._rows(job, request, rtype, members, matchers.get(rtype)):
                    writer.write(row.content)
                    written += 1
                    if written % PROGRESS_EVERY == 0:
                        self._progress(
                            job.id, f"{rtype} ({index + 1}/{len(request.types)} types), {written} resources"
                        )
            finally:
                writer.close()
            outputs += [{"type": f.type, "url": f.name, "count": f.count} for f in writer.files]
        return {
            "transactionTime": format_instant(job.transaction_time),
            "request": request.url,
            "requiresAccessToken": True,
            "output": outputs,
            "error": [],
        }

    def _progress(self, job_id: str, text: str) -> None:
        if job_id in self._cancelled or self.jobs.get(job_id).status == "cancelled":
            raise Cancelled(job_id)
        self.jobs.update(job_id, progress=text[:255], updated_at=self._now())

    def _rows(
        self,
        job: ExportJob,
        request: ExportRequest,
        rtype: str,
        members: frozenset[str] | None,
        matchers: list[ResourceMatcher] | None,
    ) -> Iterator[ExportRow]:
        rows = stream_snapshot(
            self.store,
            [rtype],
            until=job.transaction_time,
            since=request.since,
            page_bytes=self.settings.page_bytes,
        )
        for count, row in enumerate(rows):
            if count % 1000 == 999 and job.id in self._cancelled:
                raise Cancelled(job.id)
            if members is None and not matchers:
                yield row
                continue
            doc = orjson.loads(row.content)
            if members is not None:
                owners = frozenset({row.id}) if rtype == "Patient" else patient_refs(doc)
                if not owners & members:
                    continue
            if matchers and not any(m.matches(row.content) for m in matchers):
                continue
            yield row

    def _members(self, request: ExportRequest, at: datetime) -> frozenset[str] | None:
        """Patient ids of the Group (with the Patients they link to), None for other levels."""
        if request.level != "group" or request.group_id is None:
            return None
        with self.store.unit_of_work() as uow:
            group = orjson.loads(uow.resources.read("Group", request.group_id).content)
            ids = {
                str(m.get("entity", {}).get("reference", "")).removeprefix("Patient/")
                for m in group.get("member", [])
                if not m.get("inactive")
            }
            ids.discard("")
            linked: set[str] = set()
            for stored in uow.resources.read_many(("Patient", i) for i in ids).values():
                for link in orjson.loads(stored.content).get("link", []):
                    ref = str(link.get("other", {}).get("reference", ""))
                    if ref.startswith("Patient/"):
                        linked.add(ref.removeprefix("Patient/"))
        return frozenset(ids | linked)
