"""The one per-dialect module: building SQLAlchemy engines for SQLite and PostgreSQL.

SQLite: WAL journal, `synchronous=FULL`, foreign keys on, a busy timeout, the parent
directory of the file created; the driver's own transaction handling is turned off so
that a unit of work can open with `BEGIN IMMEDIATE` (writers serialise up front instead
of failing on lock upgrade).

Durability: in WAL mode `synchronous=NORMAL` does not sync the WAL at commit, so a power
loss can undo the last commits — an HL7 message could have been acknowledged (AA, or CA
"durable") and be gone. `FULL` syncs the WAL at every commit; measured on this machine a
commit costs ~0.15 ms (NORMAL) against ~0.4 ms (FULL) on a quiet disk, 2-8 ms when other
work shares it, and ingestion shares one commit among a batch of messages, so the guarantee
is kept. A commit whose records nobody has been told about yet (an original-mode message's
archive row: its ACK follows a later FULL commit that syncs the WAL with it) may be relaxed
(`relax_before_begin`, `relax_before_commit`). WAL checkpoints (copying the WAL
into the database file, ~10-50 ms each) are taken off the committing writer by
`WalCheckpointer` (a background thread with its own connection, PASSIVE mode, so it never
blocks writers); the writers' automatic checkpoint stays as a backstop at a larger size.

PostgreSQL: psycopg 3 with the pool sizes from `StoreSettings`. Nothing is built at import time.

May import: sqlalchemy, psycopg (through SQLAlchemy), the standard library,
`ehr_store.settings`, `ehr_store.errors`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url

from ehr_store.errors import InvalidInput
from ehr_store.settings import StoreSettings

__all__ = ["BEGIN_MODE_KEY", "WalCheckpointer", "dialect_name", "make_engine", "normalise_url", "sqlite_file"]

BEGIN_MODE_KEY = "hie_begin_mode"
"""`Connection.info` key: "IMMEDIATE" makes the next SQLite transaction `BEGIN IMMEDIATE`."""

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_AUTOCHECKPOINT_PAGES = 16_000
"""Backstop: a writer checkpoints itself once the WAL holds this many pages (~64 MB)."""


def normalise_url(database_url: str) -> URL:
    """Parse a database URL; `postgresql://` and `postgres://` mean psycopg 3.

    Raises: InvalidInput for a URL that is neither SQLite nor PostgreSQL.
    """
    try:
        url = make_url(database_url)
    except sa.exc.ArgumentError as exc:
        raise InvalidInput(f"not a database URL: {exc}") from None
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise InvalidInput(f"unsupported database {url.get_backend_name()!r}: use sqlite:/// or postgresql://")
    return url


def dialect_name(engine: Engine | Connection) -> str:
    """`sqlite` or `postgresql`."""
    return str(engine.dialect.name)


def relax_before_begin(conn: Connection) -> None:
    """SQLite: the next transaction on `conn` commits without syncing the WAL
    (`synchronous=NORMAL`; SQLite refuses to change it inside a transaction). The next FULL
    commit syncs the WAL file and with it this transaction. Undone by `restore_durability`.
    See `Store.unit_of_work(durable=False)`."""
    if dialect_name(conn) == "sqlite":
        _driver(conn).execute("PRAGMA synchronous=NORMAL")


def relax_before_commit(conn: Connection) -> None:
    """PostgreSQL: this transaction commits asynchronously (`SET LOCAL synchronous_commit TO
    off`: the next synchronous commit flushes the WAL past it; PostgreSQL 15 docs §30.4)."""
    if dialect_name(conn) == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO off")


def restore_durability(conn: Connection) -> None:
    """SQLite: back to `synchronous=FULL` (outside a transaction) before `conn` is reused."""
    if dialect_name(conn) == "sqlite":
        _driver(conn).execute("PRAGMA synchronous=FULL")


def _driver(conn: Connection) -> Any:
    # the DB-API connection, in autocommit mode (SQLAlchemy's execute would begin a transaction)
    return conn.connection.driver_connection


def _sqlite_engine(url: URL, settings: StoreSettings) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if not in_memory:
        Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"echo": settings.echo_sql, "connect_args": {"check_same_thread": False}}
    if in_memory:
        kwargs["poolclass"] = sa.pool.StaticPool
    engine = sa.create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")  # see module doc: durable before ACK
            cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT_PAGES}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA cache_size=-65536")
            cursor.execute("PRAGMA temp_store=MEMORY")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.info.pop(BEGIN_MODE_KEY, "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())

    return engine


def sqlite_file(engine: Engine) -> str | None:
    """The database file of a file-based SQLite engine, else None (memory or PostgreSQL)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        return None
    return str(Path(database).expanduser().resolve())


class WalCheckpointer:
    """Background PASSIVE checkpoints of one SQLite WAL database (see module doc).

    A daemon thread with its own connection checkpoints every `interval_s` seconds; it
    stops on `stop()` or when `owner` is garbage collected. A passive checkpoint never
    waits for or blocks writers and readers; what it cannot copy yet is copied next time.

    The same thread refreshes the query planner's statistics (`ANALYZE` with
    `analysis_limit`, a few milliseconds) 30 s after start and then every `analyze_s`
    seconds: without them SQLite picks bad plans for multi-condition searches after bulk
    loads (e.g. `Encounter?class=&date=` 530 ms instead of 60 ms at 20k resources).
    """

    def __init__(self, path: str, owner: object, interval_s: float = 0.2, analyze_s: float = 600.0) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(path, interval_s, analyze_s, self._stop),
            name="sqlite-checkpoint",
            daemon=True,
        )
        weakref.finalize(owner, self._stop.set)
        self._thread.start()

    @staticmethod
    def _run(path: str, interval_s: float, analyze_s: float, stop: threading.Event) -> None:
        conn: sqlite3.Connection | None = None
        next_analyze = time.monotonic() + min(30.0, analyze_s)
        try:
            while not stop.wait(interval_s):
                if conn is None:
                    if not Path(path).exists():  # not created yet: never create it from here
                        continue
                    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                    conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
                    conn.execute("PRAGMA synchronous=FULL")
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    if time.monotonic() >= next_analyze:
                        next_analyze = time.monotonic() + analyze_s
                        conn.execute("PRAGMA analysis_limit=400")
                        conn.execute("ANALYZE")
                except sqlite3.Error:  # locked or busy: the next round (or the backstop) catches up
                    continue
        finally:
            if conn is not None:
                conn.close()

    def stop(self) -> None:
        """End the thread (waits for a checkpoint in progress)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=30)


def _postgres_engine(url: URL, settings: StoreSettings) -> Engine:
    engine = sa.create_engine(
        url,
        echo=settings.echo_sql,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_pre_ping=True,
        pool_recycle=3600,
        # psycopg prepares repeated statements; generic plans of search queries ignore the
        # bound values and can be 10x slower (see bench/bench_search.py), so plan each one.
        connect_args={"options": "-c plan_cache_mode=force_custom_plan"},
    )
    # Bulk INSERTs (index, history and resource rows of a unit of work) as multi-row
    # `INSERT ... VALUES (...), (...)` pages instead of psycopg's one statement per row:
    # the index rows of a batch of HL7 messages went from ~1.5 ms to a fraction per table.
    engine.dialect.use_insertmanyvalues_wo_returning = True
    return engine


def make_engine(settings: StoreSettings) -> Engine:
    """A new engine for `settings.database_url` (SQLite file/memory or PostgreSQL).

    Raises: InvalidInput (unsupported URL).
    """
    url = normalise_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, settings)
    return _postgres_engine(url, settings)
