"""SQL `Store` and `UnitOfWork` (SQLite and PostgreSQL through SQLAlchemy Core).

A unit of work holds one connection and one transaction, opened lazily by the first
statement: a write opens it with `BEGIN IMMEDIATE` on SQLite (writers queue on the
busy timeout instead of failing on lock upgrade), `unit_of_work(write=True)` does so up
front. Database errors become domain errors here: lost connection → `Unavailable`, a
lock lost to a concurrent writer → `Conflict`.

SQLite writers of one process also queue on a process-wide lock taken just before
`BEGIN IMMEDIATE` and released when the transaction ends: a waiting thread then starts the
moment the lock is free, instead of in SQLite's busy handler, which polls with growing
sleeps (1, 2, 5, 10, 15 ... 100 ms). So two ingest batches can be in flight at once, one
mapping while the other writes or waits for its fsync (`MllpSettings.writers`).

Write-behind: the unit knows the current rows it has locked (`SELECT ... FOR UPDATE` on
PostgreSQL; SQLite's write lock) or written, so later reads and writes of them need no
statement; rows written on a known row are queued and written in bulk (one executemany
INSERT and one UPDATE, several writes of one resource coalesced into one row change)
together with the queued history and index rows, before any statement that may read
them (search, count, history, vread, `read_many`) and at commit. A queued insert that
meets a row created concurrently fails there with `VersionConflict`, as it would have
at the write.

May import: sqlalchemy, the standard library, `ehr_store` modules (not `ehr_store.memory`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ehr_store.bulk import bulk_insert
from ehr_store.engine import (
    BEGIN_MODE_KEY,
    SQLITE_BUSY_TIMEOUT_MS,
    WalCheckpointer,
    make_engine,
    relax_before_begin,
    relax_before_commit,
    restore_durability,
    sqlite_file,
)
from ehr_store.errors import Conflict, DomainError, Unavailable, VersionConflict
from ehr_store.indexing import PendingIndex, SqlIndexer
from ehr_store.model import SearchResult, StoredResource
from ehr_store.repository import MessageArchive, ResourceRepository, SearchParams
from ehr_store.schema import check_schema
from ehr_store.settings import StoreSettings
from ehr_store.sql_messages import SqlMessageArchive
from ehr_store.sql_resources import SqlResourceRepository
from ehr_store.tables import resource_history_table
from ehr_store.tables import resource_table as R

__all__ = ["SqlStore", "SqlUnitOfWork", "translate_db_error"]

Json = dict[str, Any]
Key = tuple[str, str]
_ROW_REPLACE = (
    sa.update(R)
    .where(R.c.resource_type == sa.bindparam("b_rt"), R.c.id == sa.bindparam("b_id"),
           R.c.version_id == sa.bindparam("b_prev"))
    .values(version_id=sa.bindparam("n_vid"), last_updated=sa.bindparam("n_lu"),
            deleted=sa.bindparam("n_del"), content=sa.bindparam("n_content"))
)


def translate_db_error(exc: sa.exc.DBAPIError) -> DomainError | None:
    """The domain error for a driver error, or None when it is a programming error to re-raise."""
    text = str(exc.orig) if exc.orig is not None else str(exc)
    if isinstance(exc, sa.exc.OperationalError) and ("locked" in text or "busy" in text):
        return Conflict("the database was changed by a concurrent transaction; retry", issue_code="transient")
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) or exc.connection_invalidated:
        return Unavailable("the database is unavailable")
    if isinstance(exc, sa.exc.IntegrityError):
        return Conflict("the write conflicts with a concurrent write; retry")
    return None


class SqlUnitOfWork:
    """One transaction on one connection; `resources` and `messages` never commit."""

    def __init__(self, store: SqlStore, *, write: bool = False, durable: bool = True) -> None:
        self._store = store
        self._write = write
        self._durable = durable
        self._relaxed = False  # SQLite synchronous=NORMAL set on the connection (restore on close)
        self._conn: Connection | None = None
        self._holds_writer = False  # the store's SQLite writer lock (module doc)
        self._index = PendingIndex(store.indexer)
        self._history: list[dict[str, Any]] = []
        self._known: dict[Key, StoredResource | None] = {}
        self._inserts: dict[Key, dict[str, Any]] = {}
        self._replaces: dict[Key, dict[str, Any]] = {}
        self.resources: ResourceRepository = SqlResourceRepository(self)
        self.messages: MessageArchive = SqlMessageArchive(self)

    def connection(self, *, write: bool) -> Connection:
        """The unit's connection inside its transaction (begun now if needed)."""
        if self._conn is None:
            self._conn = self._store.engine.connect()
        if not self._conn.in_transaction():
            if (write or self._write) and self._conn.dialect.name == "sqlite":
                self._take_writer_lock()
                self._conn.info[BEGIN_MODE_KEY] = "IMMEDIATE"
            if not self._durable and not self._relaxed:
                relax_before_begin(self._conn)
                self._relaxed = True
            try:
                self._conn.begin()
            except BaseException:
                self._release_writer_lock()
                raise
        return self._conn

    def _take_writer_lock(self) -> None:
        if self._holds_writer:
            return
        if not self._store.sqlite_writer.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            raise Unavailable("the database stayed locked by another writer of this process")
        self._holds_writer = True

    def _release_writer_lock(self) -> None:
        if self._holds_writer:
            self._holds_writer = False
            self._store.sqlite_writer.release()

    def queue_history(self, row: dict[str, Any]) -> None:
        """Queue a `resource_history` row; written in bulk by `flushed_connection`/commit."""
        self._history.append(row)

    # -- current rows known to this unit (see module doc) ------------------------------------
    def known_current(self, key: Key) -> tuple[bool, StoredResource | None]:
        """(True, current row or None when absent) if this unit holds `key`'s current row."""
        if key in self._known:
            return True, self._known[key]
        return False, None

    def remember_current(self, key: Key, current: StoredResource | None) -> None:
        """Record `key`'s current row as locked or written by this unit (None: absent)."""
        self._known[key] = current

    def queue_row(self, version: StoredResource, previous: int | None) -> None:
        """Queue the current-row write of `version` on a known row (`previous` None: insert)."""
        key = (version.resource_type, version.id)
        values = {"version_id": version.version_id, "last_updated": version.last_updated,
                  "deleted": version.deleted, "content": version.content or None}
        if key in self._inserts:
            self._inserts[key].update(values)
        elif previous is None:
            self._inserts[key] = {"resource_type": key[0], "id": key[1], **values}
        else:
            prev = self._replaces[key]["b_prev"] if key in self._replaces else previous
            self._replaces[key] = {"b_rt": key[0], "b_id": key[1], "b_prev": prev,
                                   "n_vid": values["version_id"], "n_lu": values["last_updated"],
                                   "n_del": values["deleted"], "n_content": values["content"]}

    def _flush_rows(self, conn: Connection) -> None:
        inserts, self._inserts = list(self._inserts.values()), {}
        replaces, self._replaces = list(self._replaces.values()), {}
        if inserts:
            try:
                bulk_insert(conn, R, inserts)
            except sa.exc.IntegrityError:
                raise VersionConflict("a resource was created concurrently; retry") from None
        if replaces and conn.execute(_ROW_REPLACE, replaces).rowcount not in (len(replaces), -1):
            raise VersionConflict("a resource was changed concurrently; retry")

    def flushed_connection(self) -> Connection:
        """The connection with queued resource, history and index rows written (before reading them)."""
        queued = bool(self._inserts or self._replaces or self._history)
        conn = self.connection(write=queued)
        if self._inserts or self._replaces:
            self._flush_rows(conn)
        if self._history:
            rows, self._history = self._history, []
            bulk_insert(conn, resource_history_table, rows)
        self._index.flush(conn)
        return conn

    def index_resource(self, version: StoredResource, doc: Json | None) -> None:
        """Queue the replacement of `version`'s search index rows (removal for a deletion)."""
        self._index.add(version, doc)

    def search(self, resource_type: str | None, params: SearchParams, *, strict: bool) -> SearchResult:
        """Run a search in this transaction (see `ResourceRepository.search`)."""
        conn = self.flushed_connection()
        return self._store.indexer.search(conn, resource_type, params, strict=strict)

    def count(self, resource_type: str | None, params: SearchParams) -> int:
        """Count a search's matches in this transaction."""
        conn = self.flushed_connection()
        return self._store.indexer.count(conn, resource_type, params)

    def commit(self) -> None:
        """Commit everything written through this unit (without waiting for the disk when
        the unit is not `durable`: `Store.unit_of_work`). Raises: Unavailable, Conflict."""
        queued = bool(self._inserts or self._replaces or self._history)
        if queued or (self._conn is not None and self._conn.in_transaction()):
            try:
                conn = self.flushed_connection()
                if not self._durable:
                    relax_before_commit(conn)
                conn.commit()
            except sa.exc.DBAPIError as exc:
                raise (translate_db_error(exc) or exc) from exc
            finally:
                self._known.clear()  # locks are released with the transaction
                if self._conn is None or not self._conn.in_transaction():
                    self._release_writer_lock()

    def rollback(self) -> None:
        """Discard everything written through this unit since the last commit."""
        self._index.clear()
        self._history.clear()
        self._known.clear()
        self._inserts.clear()
        self._replaces.clear()
        try:
            if self._conn is not None and self._conn.in_transaction():
                self._conn.rollback()
        finally:
            self._release_writer_lock()

    def close(self) -> None:
        """Roll back what is uncommitted and return the connection to the pool."""
        if self._conn is not None:
            try:
                self.rollback()
                if self._relaxed:
                    restore_durability(self._conn)
                    self._relaxed = False
            finally:
                if self._relaxed:  # could not restore: drop the connection, never reuse it relaxed
                    self._conn.invalidate()
                self._relaxed = False
                self._conn.close()
                self._conn = None


class SqlStore:
    """`Store` over a SQLAlchemy engine built from `StoreSettings.database_url`."""

    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings
        self.engine: Engine = make_engine(settings)
        self.indexer = SqlIndexer(settings)
        self.sqlite_writer = threading.Lock()  # SQLite write transactions of this process (module doc)
        self.code_sets = self.indexer.code_sets  # see ehr_store.use_code_set_resolver
        path = sqlite_file(self.engine)
        self._checkpointer = WalCheckpointer(path, self) if path is not None else None

    @contextmanager
    def unit_of_work(self, *, write: bool = False, durable: bool = True) -> Iterator[SqlUnitOfWork]:
        """A new transaction, rolled back on exit unless committed.

        `write=True` takes SQLite's write lock at the first statement (use it for units that
        read before they write, such as transaction Bundles). `durable=False`: see
        `Store.unit_of_work` (engine.relax_before_begin / relax_before_commit).
        Raises: Unavailable (database down), Conflict (lost a write race).
        """
        uow = SqlUnitOfWork(self, write=write, durable=durable)
        try:
            yield uow
        except sa.exc.DBAPIError as exc:
            raise (translate_db_error(exc) or exc) from exc
        finally:
            uow.close()

    def check_schema(self) -> None:
        """See `Store.check_schema`. Raises: Unavailable, Unprocessable (run `hie db upgrade`)."""
        check_schema(self.engine)

    def close(self) -> None:
        """Stop the WAL checkpointer (SQLite) and dispose of the connection pool."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        self.engine.dispose()
