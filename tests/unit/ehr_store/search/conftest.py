"""Search test backends: the same resources loaded into memory, SQLite and PostgreSQL.

`search_backend` is parametrized over the three; each loads resources (resource row + index
rows in one transaction, as the store does) and runs searches. SQL tables are made with
`SQLModel.metadata.create_all` so these tests depend only on `ehr_store.search` and
`ehr_store.tables`. PostgreSQL comes from the session fixtures in `tests/conftest.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

from ehr_store.jsonio import dumps
from ehr_store.model import SearchResult, StoredResource
from ehr_store.search import (
    MemoryIndex,
    delete_index,
    execute_count,
    execute_search,
    extract_index,
    get_registry,
    write_index,
)
from ehr_store.settings import StoreSettings
from ehr_store.tables import resource_table

BASE_TIME = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


class SearchBackend:
    """Load resources and search them on one backend."""

    def __init__(self, name: str, engine: sa.Engine | None) -> None:
        self.name = name
        self.engine = engine
        self.settings = StoreSettings(default_page_size=50)
        self.registry = get_registry()
        self.memory = MemoryIndex(self.settings, self.registry)
        self.current: dict[tuple[str, str], StoredResource] = {}
        self._tick = 0

    def load(self, *resources: dict[str, Any]) -> None:
        """Store resources as version 1 with increasing lastUpdated (1 minute apart)."""
        for res in resources:
            self._tick += 1
            stored = StoredResource(
                res["resourceType"],
                res["id"],
                1,
                BASE_TIME + timedelta(minutes=self._tick),
                False,
                dumps(res),
            )
            entries = extract_index(res, self.registry)
            if self.engine is None:
                self.current[(stored.resource_type, stored.id)] = stored
                self.memory.put(stored.resource_type, stored.id, entries)
                continue
            with self.engine.begin() as conn:
                conn.execute(
                    resource_table.insert(),
                    {
                        "resource_type": stored.resource_type,
                        "id": stored.id,
                        "version_id": 1,
                        "last_updated": stored.last_updated,
                        "deleted": False,
                        "content": stored.content,
                    },
                )
                write_index(conn, stored.resource_type, stored.id, entries, replace=False)

    def delete(self, resource_type: str, id: str) -> None:
        if self.engine is None:
            old = self.current[(resource_type, id)]
            self.current[(resource_type, id)] = StoredResource(
                resource_type, id, 2, old.last_updated, True, b""
            )
            self.memory.remove(resource_type, id)
            return
        with self.engine.begin() as conn:
            conn.execute(
                resource_table.update()
                .where(resource_table.c.resource_type == resource_type, resource_table.c.id == id)
                .values(deleted=True, content=None)
            )
            delete_index(conn, resource_type, id)

    def search(
        self, resource_type: str | None, params: Sequence[tuple[str, str]], *, strict: bool = False
    ) -> SearchResult:
        if self.engine is None:
            return self.memory.search(self.current, resource_type, params, strict=strict)
        with self.engine.connect() as conn:
            return execute_search(
                conn, resource_type, params, strict=strict, settings=self.settings, registry=self.registry
            )

    def count(self, resource_type: str | None, params: Sequence[tuple[str, str]]) -> int:
        if self.engine is None:
            return self.memory.count(self.current, resource_type, params)
        with self.engine.connect() as conn:
            return execute_count(conn, resource_type, params, settings=self.settings, registry=self.registry)

    def ids(self, resource_type: str | None, params: Sequence[tuple[str, str]]) -> list[str]:
        """Ids of the matches, in result order."""
        return [m.id for m in self.search(resource_type, params).matches]


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


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def search_backend(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[SearchBackend]:
    """A fresh, empty backend per test."""
    if request.param == "memory":
        yield SearchBackend("memory", None)
        return
    if request.param == "sqlite":
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
