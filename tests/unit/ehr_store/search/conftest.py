"""Search test backends: the same resources loaded into memory, SQLite and PostgreSQL.

`search_backend` is parametrized over the three, and SQLite and PostgreSQL once more with
`sql_probe.PROBE_LIMIT` at 0 (`*-joined`: every driver as the single-statement semi-join, the
path of large id sets; the others fetch the driver's ids first); each loads resources (resource row + index
rows in one transaction, as the store does) and runs searches. SQL tables are made with
`SQLModel.metadata.create_all` so these tests depend only on `ehr_store.search` and
`ehr_store.tables`. PostgreSQL comes from the session fixtures in `tests/conftest.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from search_backends import SearchBackend
from sqlmodel import SQLModel

from ehr_store.search import sql_probe


def _sql_engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    SQLModel.metadata.create_all(engine)
    return engine


@pytest.fixture(scope="session")
def search_pg_engine(make_postgres_database: Callable[[], str]) -> Iterator[sa.Engine]:
    """One PostgreSQL database with the tables, for all search tests (emptied per test)."""
    engine = _sql_engine(make_postgres_database())
    yield engine
    engine.dispose()


@pytest.fixture(params=["memory", "sqlite", "postgres", "sqlite-joined", "postgres-joined"])
def search_backend(
    request: pytest.FixtureRequest, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SearchBackend]:
    """A fresh, empty backend per test."""
    if request.param.endswith("-joined"):
        monkeypatch.setattr(sql_probe, "PROBE_LIMIT", 0)
    if request.param == "memory":
        yield SearchBackend("memory", None)
        return
    if request.param.startswith("sqlite"):
        engine = _sql_engine(f"sqlite:///{tmp_path / 'search.db'}")
        try:
            yield SearchBackend("sqlite", engine)
        finally:
            engine.dispose()
        return
    engine = request.getfixturevalue("search_pg_engine")
    with engine.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
        conn.execute(sa.text(f"TRUNCATE {names}"))
    yield SearchBackend("postgres", engine)
