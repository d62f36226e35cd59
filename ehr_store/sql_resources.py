"""SQL `ResourceRepository`: current rows in `resource`, versions in `resource_history`.

Writes go through `VersionedRepository` (the version rules) into the primitives here.
Optimistic concurrency: the current row is replaced with
`UPDATE resource ... WHERE version_id = :previous` (and locked with `SELECT ... FOR UPDATE`
first on PostgreSQL; SQLite write units start with `BEGIN IMMEDIATE`), first versions are
inserted with `ON CONFLICT DO NOTHING`; a lost race is a `VersionConflict`. Search index
rows are replaced in the same transaction through `ehr_store.search`.

May import: sqlalchemy, the standard library, and `ehr_store` modules (not `ehr_store.memory`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ehr_store.errors import NotFound
from ehr_store.model import HistoryMethod, HistoryPage, SearchResult, StoredResource
from ehr_store.repository import SearchParams
from ehr_store.search import keys_condition, keys_params
from ehr_store.tables import resource_history_table as H
from ehr_store.tables import resource_table as R
from ehr_store.validation import check_resource_type
from ehr_store.versioning import VersionedRepository

if TYPE_CHECKING:
    from ehr_store.sql import SqlUnitOfWork

__all__ = ["SqlResourceRepository"]

Json = dict[str, Any]
_CURRENT_COLS = (R.c.resource_type, R.c.id, R.c.version_id, R.c.last_updated, R.c.deleted, R.c.content)
_HISTORY_COLS = (H.c.resource_type, H.c.id, H.c.version_id, H.c.last_updated, H.c.deleted, H.c.content,
                 H.c.method)
_SELECT_CURRENT = sa.select(*_CURRENT_COLS).where(
    R.c.resource_type == sa.bindparam("rt"), R.c.id == sa.bindparam("rid"))
_SELECT_VERSION = sa.select(*_HISTORY_COLS).where(
    H.c.resource_type == sa.bindparam("rt"), H.c.id == sa.bindparam("rid"),
    H.c.version_id == sa.bindparam("vid"))
_REPLACE = (
    sa.update(R)
    .where(R.c.resource_type == sa.bindparam("b_rt"), R.c.id == sa.bindparam("b_id"),
           R.c.version_id == sa.bindparam("b_prev"))
    .values(version_id=sa.bindparam("n_vid"), last_updated=sa.bindparam("n_lu"),
            deleted=sa.bindparam("n_del"), content=sa.bindparam("n_content"))
)
_INSERT_FIRST = {
    "postgresql": postgresql.insert(R).on_conflict_do_nothing(index_elements=["resource_type", "id"])
    .returning(R.c.version_id),
    "sqlite": sqlite.insert(R).on_conflict_do_nothing(index_elements=["resource_type", "id"])
    .returning(R.c.version_id),
}


@lru_cache(maxsize=256)
def _prefetch_statement(types: tuple[str, ...], for_update: bool) -> Any:
    stmt = (sa.select(*_CURRENT_COLS).where(keys_condition(R.c.resource_type, R.c.id, types))
            .order_by(R.c.resource_type, R.c.id))
    return stmt.with_for_update() if for_update else stmt


@lru_cache(maxsize=256)
def _versions_statement(types: tuple[str, ...]) -> Any:
    return sa.select(R.c.resource_type, R.c.id, R.c.version_id).where(
        keys_condition(R.c.resource_type, R.c.id, types), R.c.deleted.is_(False)
    )


def _row_to_stored(row: Any, method: HistoryMethod = "PUT") -> StoredResource:
    content = row.content
    return StoredResource(
        resource_type=row.resource_type,
        id=row.id,
        version_id=row.version_id,
        last_updated=row.last_updated,
        deleted=bool(row.deleted),
        content=content.encode("utf-8") if content is not None else b"",
        method=getattr(row, "method", method),
    )


class SqlResourceRepository(VersionedRepository):
    """`ResourceRepository` over one `SqlUnitOfWork` connection (never commits)."""

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    # -- primitives -------------------------------------------------------------------------
    def _current(self, resource_type: str, id: str, *, for_update: bool) -> StoredResource | None:
        known, current = self._uow.known_current((resource_type, id))
        if known:
            return current
        conn = self._uow.connection(write=for_update)
        stmt = _SELECT_CURRENT
        if for_update and conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        row = conn.execute(stmt, {"rt": resource_type, "rid": id}).first()
        current = None if row is None else _row_to_stored(row)
        if for_update:
            self._uow.remember_current((resource_type, id), current)
        return current

    def _version(self, resource_type: str, id: str, version_id: int) -> StoredResource | None:
        conn = self._uow.flushed_connection()
        row = conn.execute(_SELECT_VERSION, {"rt": resource_type, "rid": id, "vid": version_id}).first()
        return None if row is None else _row_to_stored(row)

    def _history_row(self, version: StoredResource) -> dict[str, Any]:
        return {
            "resource_type": version.resource_type, "id": version.id, "version_id": version.version_id,
            "last_updated": version.last_updated, "deleted": version.deleted, "method": version.method,
            "content": version.content or None,
        }

    def _insert(self, version: StoredResource, doc: Json | None) -> bool:
        key = (version.resource_type, version.id)
        row = self._history_row(version)
        known, current = self._uow.known_current(key)
        if known and current is not None:
            return False
        if known:  # known absent: queued (a concurrent create fails the flush), see SqlUnitOfWork
            self._uow.queue_row(version, None)
        else:  # an id this unit has not looked at: insert now, so a duplicate is seen at once
            conn = self._uow.connection(write=True)
            first = {k: v for k, v in row.items() if k != "method"}
            if conn.execute(_INSERT_FIRST[conn.dialect.name], first).first() is None:
                return False
        self._written(version, doc, row)
        return True

    def _replace(self, version: StoredResource, doc: Json | None, previous: int) -> bool:
        key = (version.resource_type, version.id)
        row = self._history_row(version)
        known, current = self._uow.known_current(key)
        if known:
            if current is None or current.version_id != previous:
                return False
            self._uow.queue_row(version, previous)
        else:
            conn = self._uow.connection(write=True)
            params = {"b_rt": version.resource_type, "b_id": version.id, "b_prev": previous,
                      "n_vid": version.version_id, "n_lu": version.last_updated, "n_del": version.deleted,
                      "n_content": row["content"]}
            if conn.execute(_REPLACE, params).rowcount != 1:
                return False
        self._written(version, doc, row)
        return True

    def _fresh(self, resource_type: str, id: str) -> None:
        self._uow.remember_current((resource_type, id), None)  # a new UUID: its insert can be queued

    def _written(self, version: StoredResource, doc: Json | None, row: dict[str, Any]) -> None:
        self._uow.remember_current((version.resource_type, version.id), version)
        self._uow.queue_history(row)
        self._uow.index_resource(version, doc)

    def prefetch(self, references: Iterable[tuple[str, str]]) -> None:
        """See `ResourceRepository.prefetch`: one SELECT (FOR UPDATE on PostgreSQL, in key
        order so concurrent units lock alike) per 500 keys not yet known to the unit."""
        wanted = sorted({k for k in references if not self._uow.known_current(k)[0]})
        if not wanted:
            return
        conn = self._uow.connection(write=True)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            types, params = keys_params(chunk)
            stmt = _prefetch_statement(types, conn.dialect.name == "postgresql")
            found = {(r.resource_type, r.id): _row_to_stored(r) for r in conn.execute(stmt, params)}
            for key in chunk:
                self._uow.remember_current(key, found.get(key))

    def current_versions(self, references: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """See `ResourceRepository.current_versions`: rows known to the unit from memory, the
        others with one SELECT of (type, id, version) per 500 keys."""
        found: dict[tuple[str, str], int] = {}
        wanted: list[tuple[str, str]] = []
        for key in set(references):
            known, current = self._uow.known_current(key)
            if not known:
                wanted.append(key)
            elif current is not None and not current.deleted:
                found[key] = current.version_id
        if not wanted:
            return found
        conn = self._uow.connection(write=False)
        wanted.sort()
        for start in range(0, len(wanted), 500):
            types, params = keys_params(wanted[start:start + 500])
            for row in conn.execute(_versions_statement(types), params):
                found[(row.resource_type, row.id)] = row.version_id
        return found

    # -- reads ------------------------------------------------------------------------------
    def read_many(self, references: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StoredResource]:
        """See `ResourceRepository.read_many`: rows known to the unit from memory, the others
        with one SELECT per resource type, chunks of 500 ids."""
        by_type: dict[str, set[str]] = defaultdict(set)
        found: dict[tuple[str, str], StoredResource] = {}
        for rtype, rid in references:
            known, current = self._uow.known_current((rtype, rid))
            if not known:
                by_type[rtype].add(rid)
            elif current is not None and not current.deleted:  # as written in this unit
                found[(rtype, rid)] = current
        if not by_type:
            return found
        conn = self._uow.connection(write=False)
        for rtype, ids in by_type.items():
            id_list = sorted(ids)
            for start in range(0, len(id_list), 500):
                chunk = id_list[start:start + 500]
                stmt = sa.select(*_CURRENT_COLS).where(
                    R.c.resource_type == rtype, R.c.id.in_(chunk), R.c.deleted.is_(False))
                for row in conn.execute(stmt):
                    found[(row.resource_type, row.id)] = _row_to_stored(row)
        return found

    def history(
        self,
        resource_type: str | None = None,
        id: str | None = None,
        *,
        since: datetime | None = None,
        at: datetime | None = None,
        count: int = 50,
        offset: int = 0,
    ) -> HistoryPage:
        """See `ResourceRepository.history` (FHIR R4B http §3.1.0.4 `_since`, `_at`, `_count`)."""
        if resource_type is not None:
            check_resource_type(resource_type)
        conn = self._uow.flushed_connection()
        where: list[Any] = []
        if resource_type is not None:
            where.append(H.c.resource_type == resource_type)
        if id is not None:
            where.append(H.c.id == id)
        if since is not None:
            where.append(H.c.last_updated >= since)
        if at is not None:
            h2 = H.alias("h2")
            latest = (sa.select(sa.func.max(h2.c.version_id))
                      .where(h2.c.resource_type == H.c.resource_type, h2.c.id == H.c.id,
                             h2.c.last_updated <= at)
                      .scalar_subquery())
            where.append(H.c.version_id == latest)
        order = [H.c.last_updated.desc(), H.c.resource_type, H.c.id, H.c.version_id.desc()]
        stmt = sa.select(*_HISTORY_COLS).where(*where).order_by(*order).limit(count + 1).offset(offset)
        rows = conn.execute(stmt).all()
        entries = [_row_to_stored(r) for r in rows[:count]]
        has_more = len(rows) > count
        total: int | None = None
        if id is not None and resource_type is not None:
            if not rows and self._current(resource_type, id, for_update=False) is None:
                raise NotFound(f"{resource_type}/{id} is not known")
            total = offset + len(entries) if not has_more else int(
                conn.execute(sa.select(sa.func.count()).select_from(H).where(*where)).scalar_one())
        elif not has_more and (entries or offset == 0):
            total = offset + len(entries)
        return HistoryPage(entries=entries, total=total, has_more=has_more)

    # -- search -----------------------------------------------------------------------------
    def search(
        self, resource_type: str | None, params: SearchParams, *, strict: bool = False
    ) -> SearchResult:
        """See `ResourceRepository.search`; executed by `ehr_store.search` in this transaction."""
        return self._uow.search(resource_type, params, strict=strict)

    def count(self, resource_type: str | None, params: SearchParams) -> int:
        """See `ResourceRepository.count`."""
        return self._uow.count(resource_type, params)
