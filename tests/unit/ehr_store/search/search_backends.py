"""`SearchBackend`: the same resources loaded into memory, SQLite or PostgreSQL, and searched.

Loading writes the resource row and its index rows in one transaction, as the store does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

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
