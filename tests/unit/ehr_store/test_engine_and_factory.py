"""ehr_store.engine and open_store: per-dialect settings, URL handling, backend choice."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from ehr_store import InvalidInput, MemoryStore, SqlStore, StoreSettings, Unavailable, open_store
from ehr_store.engine import make_engine, normalise_url


def test_sqlite_pragmas_and_parent_dir(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "hie.db"
    engine = make_engine(StoreSettings(database_url=f"sqlite:///{path}"))
    try:
        with engine.connect() as conn:
            pragmas = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                       for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")}
    finally:
        engine.dispose()
    assert path.parent.is_dir()
    assert pragmas == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 30000}


def test_postgres_urls_use_psycopg3() -> None:
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(InvalidInput):
        normalise_url("mysql://u@h/db")
    with pytest.raises(InvalidInput):
        normalise_url("not a url")


def test_postgres_pool_sizes_from_settings() -> None:
    settings = StoreSettings(database_url="postgresql://u@127.0.0.1:1/db", pool_size=3, max_overflow=2)
    engine = make_engine(settings)
    try:
        assert isinstance(engine.pool, sa.pool.QueuePool)
        assert engine.pool.size() == 3 and engine.pool._max_overflow == 2
    finally:
        engine.dispose()


def test_open_store_picks_backend(tmp_path: Path) -> None:
    assert isinstance(open_store(StoreSettings(database_url="memory://")), MemoryStore)
    store = open_store(StoreSettings(database_url=f"sqlite:///{tmp_path / 'x.db'}"))
    try:
        assert isinstance(store, SqlStore)
    finally:
        store.close()


def test_unreachable_database_is_unavailable() -> None:
    store = SqlStore(StoreSettings(database_url="postgresql://nobody@127.0.0.1:1/none"))
    try:
        with pytest.raises(Unavailable):
            store.check_schema()
        with pytest.raises(Unavailable), store.unit_of_work() as uow:
            uow.resources.read("Patient", "x")
    finally:
        store.close()


def test_checkpointer_refreshes_planner_statistics(tmp_path: Path) -> None:
    """SQLite gets `ANALYZE` statistics in the background (bad plans after bulk loads otherwise)."""
    import sqlite3
    import time

    from ehr_store.engine import WalCheckpointer

    path = tmp_path / "stats.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        db.execute("CREATE INDEX t_a ON t (a)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(i % 50, str(i)) for i in range(2000)])
    class Owner:
        pass

    owner = Owner()
    checkpointer = WalCheckpointer(str(path), owner, interval_s=0.05, analyze_s=0.1)
    try:
        deadline = time.monotonic() + 10
        rows: list[tuple[str, ...]] = []
        while time.monotonic() < deadline and not rows:
            time.sleep(0.1)
            with sqlite3.connect(path) as db:
                has_stats = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchall()
                rows = db.execute("SELECT idx FROM sqlite_stat1").fetchall() if has_stats else []
        assert ("t_a",) in rows
    finally:
        checkpointer.stop()
