"""Streaming reads for FHIR Bulk Data export, the export job records, and a one-resource matcher.

- `stream_snapshot(store, types, until=T, since=S)`: every resource of `types` as it stood at
  the instant T (its newest version with `lastUpdated <= T`, not deleted, `lastUpdated > S`),
  as the stored JSON bytes (never re-serialised). SQL stores read in one read transaction (a
  snapshot: REPEATABLE READ on PostgreSQL, one WAL read transaction on SQLite) with keyset
  pages on `(resource_type, id)` whose row count adapts so a page holds about `page_bytes`:
  current rows with `lastUpdated <= T` first, then, for rows changed after T, the version
  as of T from `resource_history`. Memory stays flat whatever the number of resources.
- `ExportJob` and `export_jobs(store)`: the records of export jobs (table `bulk_export_job`,
  migration 0005), so jobs survive restarts.
- `ResourceMatcher(type, params)`: does one resource match a search (for `_typeFilter`)?

Spec: FHIR Bulk Data Access v2.0 (`transactionTime`, `_since`, `_typeFilter`).
May import: sqlalchemy, sqlmodel, the standard library, `ehr_store` modules.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlmodel import SQLModel

from ehr_store.errors import InvalidInput, NotFound, NotSupported
from ehr_store.jsonio import loads_resource
from ehr_store.model import StoredResource
from ehr_store.repository import Store
from ehr_store.search import MemoryIndex, get_registry
from ehr_store.settings import StoreSettings
from ehr_store.tables import UtcDateTime
from ehr_store.tables import resource_history_table as H
from ehr_store.tables import resource_table as R

__all__ = ["ExportJob", "ExportJobStore", "ExportRow", "ResourceMatcher", "export_jobs", "stream_snapshot"]

export_job_table = sa.Table(
    "bulk_export_job",
    SQLModel.metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("request", sa.Text(), nullable=False),
    sa.Column("transaction_time", UtcDateTime(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=True),
    sa.Column("progress", sa.String(255), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("output", sa.Text(), nullable=True),
    sa.Index("ix_bulk_export_job_status", "status"),
)


@dataclass(frozen=True, slots=True)
class ExportRow:
    """One resource of an export: type, id, version, lastUpdated and the stored JSON bytes."""

    resource_type: str
    id: str
    version_id: int
    last_updated: datetime
    content: bytes


@dataclass(frozen=True)
class ExportJob:
    """An export job record. `status`: accepted | in-progress | completed | error | cancelled.
    `request`: the kick-off as JSON-able dict; `output`: the completion manifest (or None)."""

    id: str
    owner: str
    status: str
    request: dict[str, Any]
    transaction_time: datetime
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    progress: str | None = None
    error: str | None = None
    output: dict[str, Any] | None = field(default=None)


# -- streaming ------------------------------------------------------------------------------------
def stream_snapshot(
    store: Store,
    types: Sequence[str],
    *,
    until: datetime,
    since: datetime | None = None,
    page_bytes: int = 4 * 1024 * 1024,
) -> Iterator[ExportRow]:
    """Resources of `types` as of `until` (see module docstring), type by type, by id.

    `until`/`since` are timezone-aware. Raises: NotSupported (a store of neither kind),
    Unavailable (database errors surface as the store's domain errors).
    """
    engine = getattr(store, "engine", None)
    if isinstance(engine, sa.engine.Engine):
        yield from _sql_snapshot(engine, types, until, since, max(page_bytes, 64 * 1024))
        return
    state = getattr(store, "_state", None) or getattr(store, "state", None)
    if state is not None and hasattr(state, "versions"):
        yield from _memory_snapshot(state, types, until, since)
        return
    raise NotSupported("this store cannot stream exports")


def _sql_snapshot(
    engine: sa.engine.Engine, types: Sequence[str], until: datetime, since: datetime | None, page_bytes: int
) -> Iterator[ExportRow]:
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            for rtype in types:
                yield from _current_pages(conn, rtype, until, since, page_bytes)
                yield from _changed_after(conn, rtype, until, since)


def _current_pages(
    conn: sa.engine.Connection, rtype: str, until: datetime, since: datetime | None, page_bytes: int
) -> Iterator[ExportRow]:
    where = [R.c.resource_type == rtype, R.c.deleted.is_(False), R.c.last_updated <= until]
    if since is not None:
        where.append(R.c.last_updated > since)
    cols = (R.c.id, R.c.version_id, R.c.last_updated, R.c.content)
    after: str | None = None
    rows_per_page, average = 256, 2048.0
    while True:
        cond = [*where, R.c.id > after] if after is not None else where
        rows = conn.execute(sa.select(*cols).where(*cond).order_by(R.c.id).limit(rows_per_page)).all()
        size = 0
        for row in rows:
            content = row.content.encode("utf-8")
            size += len(content)
            yield ExportRow(rtype, row.id, row.version_id, row.last_updated, content)
        if len(rows) < rows_per_page:
            return
        after = rows[-1].id
        average = 0.5 * average + 0.5 * (size / len(rows))
        rows_per_page = max(16, min(20_000, int(page_bytes / max(average, 64.0))))


def _changed_after(
    conn: sa.engine.Connection, rtype: str, until: datetime, since: datetime | None
) -> Iterator[ExportRow]:
    """Rows changed after `until`: their newest version at `until` from the history table."""
    changed = sa.select(R.c.id).where(R.c.resource_type == rtype, R.c.last_updated > until)
    newest = (
        sa.select(sa.func.max(H.c.version_id))
        .where(H.c.resource_type == rtype, H.c.id == sa.bindparam("rid"), H.c.last_updated <= until)
        .scalar_subquery()
    )
    version = sa.select(H.c.version_id, H.c.last_updated, H.c.deleted, H.c.content).where(
        H.c.resource_type == rtype, H.c.id == sa.bindparam("rid"), H.c.version_id == newest
    )
    after = ""
    while True:
        ids = conn.execute(changed.where(R.c.id > after).order_by(R.c.id).limit(500)).scalars().all()
        for rid in ids:
            row = conn.execute(version, {"rid": rid}).first()
            if row is None or row.deleted or (since is not None and row.last_updated <= since):
                continue
            yield ExportRow(rtype, rid, row.version_id, row.last_updated, row.content.encode("utf-8"))
        if len(ids) < 500:
            return
        after = ids[-1]


def _memory_snapshot(
    state: Any, types: Sequence[str], until: datetime, since: datetime | None
) -> Iterator[ExportRow]:
    with state.lock:
        keys = sorted(k for k in state.versions if k[0] in set(types))
    order = {t: i for i, t in enumerate(types)}
    for key in sorted(keys, key=lambda k: (order[k[0]], k[1])):
        with state.lock:
            versions = list(state.versions.get(key, ()))
        at = [v for v in versions if v.last_updated <= until]
        if not at or at[-1].deleted or (since is not None and at[-1].last_updated <= since):
            continue
        v = at[-1]
        yield ExportRow(v.resource_type, v.id, v.version_id, v.last_updated, v.content)


# -- matching one resource (_typeFilter) ----------------------------------------------------------
class ResourceMatcher:
    """Whether one resource matches a type-level search (`_typeFilter`, Bulk Data v2.0 §kick-off).

    Plain parameters and modifiers are supported; chains and `_has` need other resources and are
    refused. Raises (constructor): InvalidInput (unknown parameter or bad value), NotSupported.
    """

    def __init__(
        self, resource_type: str, params: Sequence[tuple[str, str]], settings: StoreSettings
    ) -> None:
        if any("." in k or k.startswith("_has") for k, _ in params):
            raise NotSupported("_typeFilter supports plain search parameters (no chains or _has)")
        self.resource_type = resource_type
        self.params = [*params, ("_count", "1")]
        self._index = MemoryIndex(settings, get_registry(settings.default_timezone))
        self._lock = threading.Lock()
        probe = {"resourceType": resource_type, "id": "probe"}
        self._check(probe)  # raises InvalidInput for an unknown parameter or a bad value

    def _check(self, doc: dict[str, Any]) -> bool:
        stored = StoredResource(
            doc["resourceType"], str(doc.get("id", "x")), 1, datetime.now().astimezone(), False, b""
        )
        key = (stored.resource_type, stored.id)
        with self._lock:
            self._index.index(stored, doc)
            try:
                result = self._index.search({key: stored}, self.resource_type, self.params, strict=True)
            finally:
                self._index.remove(*key)
        return bool(result.matches)

    def matches(self, content: bytes | dict[str, Any]) -> bool:
        """True when the resource (stored JSON bytes or a parsed dict) matches. Raises: InvalidInput."""
        doc = content if isinstance(content, dict) else loads_resource(content)
        return doc.get("resourceType") == self.resource_type and self._check(doc)


# -- job records --------------------------------------------------------------------------------
class ExportJobStore:
    """Export job records in the store's database (or in memory for the memory store)."""

    def __init__(self, store: Store) -> None:
        engine = getattr(store, "engine", None)
        self._engine: sa.engine.Engine | None = engine if isinstance(engine, sa.engine.Engine) else None
        if self._engine is None:
            state = getattr(store, "_state", None) or getattr(store, "state", None)
            if state is None:
                raise NotSupported("this store cannot keep export jobs")
            with state.lock:
                if not hasattr(state, "export_jobs"):
                    state.export_jobs = {}
            self._memory: dict[str, ExportJob] = state.export_jobs
            self._lock: Any = state.lock

    @staticmethod
    def _row(job: ExportJob) -> dict[str, Any]:
        return {
            "id": job.id,
            "owner": job.owner,
            "status": job.status,
            "request": orjson.dumps(job.request).decode(),
            "transaction_time": job.transaction_time,
            "created_at": job.created_at,
            "updated_at": job.updated_at,
            "expires_at": job.expires_at,
            "progress": job.progress,
            "error": job.error,
            "output": None if job.output is None else orjson.dumps(job.output).decode(),
        }

    @staticmethod
    def _job(row: Any) -> ExportJob:
        return ExportJob(
            id=row.id,
            owner=row.owner,
            status=row.status,
            request=orjson.loads(row.request),
            transaction_time=row.transaction_time,
            created_at=row.created_at,
            updated_at=row.updated_at,
            expires_at=row.expires_at,
            progress=row.progress,
            error=row.error,
            output=None if row.output is None else orjson.loads(row.output),
        )

    def add(self, job: ExportJob) -> None:
        """Record a new job. Raises: InvalidInput (id taken)."""
        if self._engine is None:
            with self._lock:
                if job.id in self._memory:
                    raise InvalidInput(f"export job {job.id} exists")
                self._memory[job.id] = job
            return
        with self._engine.begin() as conn:
            conn.execute(sa.insert(export_job_table), self._row(job))

    def get(self, job_id: str) -> ExportJob:
        """Raises: NotFound."""
        if self._engine is None:
            with self._lock:
                found = self._memory.get(job_id)
        else:
            with self._engine.connect() as conn:
                row = conn.execute(sa.select(export_job_table).where(export_job_table.c.id == job_id)).first()
            found = None if row is None else self._job(row)
        if found is None:
            raise NotFound(f"no export job {job_id}")
        return found

    def update(self, job_id: str, **changes: Any) -> ExportJob:
        """Change fields of a job (and `updated_at` when given). Raises: NotFound."""
        job = replace(self.get(job_id), **changes)
        if self._engine is None:
            with self._lock:
                self._memory[job_id] = job
            return job
        row = self._row(job)
        with self._engine.begin() as conn:
            conn.execute(
                sa.update(export_job_table)
                .where(export_job_table.c.id == job_id)
                .values({k: v for k, v in row.items() if k != "id"})
            )
        return job

    def delete(self, job_id: str) -> None:
        """Forget a job record (no error when absent)."""
        if self._engine is None:
            with self._lock:
                self._memory.pop(job_id, None)
            return
        with self._engine.begin() as conn:
            conn.execute(sa.delete(export_job_table).where(export_job_table.c.id == job_id))

    def list(self, statuses: Sequence[str] | None = None) -> list[ExportJob]:
        """Jobs (oldest first), optionally only those in `statuses`."""
        if self._engine is None:
            with self._lock:
                jobs = list(self._memory.values())
            return sorted(
                (j for j in jobs if statuses is None or j.status in statuses), key=lambda j: j.created_at
            )
        stmt = sa.select(export_job_table).order_by(export_job_table.c.created_at)
        if statuses is not None:
            stmt = stmt.where(export_job_table.c.status.in_(list(statuses)))
        with self._engine.connect() as conn:
            return [self._job(r) for r in conn.execute(stmt)]


def export_jobs(store: Store) -> ExportJobStore:
    """The export job records of `store`. Raises: NotSupported (neither SQL nor memory store)."""
    return ExportJobStore(store)
