"""Wiring of the search index (`ehr_store.search`) into SQL units of work.

Index rows are extracted when a version is written and buffered in the unit of work;
they are flushed in bulk (one DELETE per table and type for replaced resources, one
executemany INSERT per table) before a search or count runs in the unit and at commit,
so a resource and its index rows always commit together.

May import: sqlalchemy, the standard library, `ehr_store` modules.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from ehr_store.model import SearchResult, StoredResource
from ehr_store.repository import SearchParams
from ehr_store.search import (
    CodeSets,
    IndexEntries,
    Registry,
    delete_index_many,
    execute_count,
    execute_search,
    extract_index,
    get_registry,
    write_indexes,
)
from ehr_store.settings import StoreSettings

__all__ = ["PendingIndex", "SqlIndexer"]

Key = tuple[str, str]


class SqlIndexer:
    """Index extraction and search execution for one SQL store (registry loaded once)."""

    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings
        self._registry: Registry | None = None
        self.code_sets = CodeSets()  # :in/:not-in/:below/:above resolver (ehr_store/search/code_sets.py)

    @property
    def registry(self) -> Registry:
        """The search parameter registry (loaded on first use)."""
        if self._registry is None:
            self._registry = get_registry(self.settings.default_timezone)
        return self._registry

    def extract(self, doc: dict[str, Any]) -> IndexEntries:
        """Index entries of a stored document (pure)."""
        return extract_index(doc, self.registry)

    def search(self, conn: Connection, resource_type: str | None, params: SearchParams, *,
               strict: bool) -> SearchResult:
        """Run a search on `conn` (FHIR R4B search §3.1.1). Raises: InvalidInput."""
        return execute_search(conn, resource_type, params, strict=strict, settings=self.settings,
                              registry=self.registry, code_sets=self.code_sets)

    def count(self, conn: Connection, resource_type: str | None, params: SearchParams) -> int:
        """Count a search's matches on `conn`. Raises: InvalidInput."""
        return execute_count(conn, resource_type, params, settings=self.settings, registry=self.registry,
                             code_sets=self.code_sets)


class PendingIndex:
    """Index writes of one unit of work, waiting for `flush`."""

    def __init__(self, indexer: SqlIndexer) -> None:
        self._indexer = indexer
        self._pending: dict[Key, tuple[dict[str, Any] | None, bool]] = {}

    def add(self, version: StoredResource, doc: dict[str, Any] | None) -> None:
        """Queue the index rows of a written version (None entries for a deletion)."""
        key = (version.resource_type, version.id)
        earlier = self._pending.get(key)
        had_rows = earlier[1] if earlier is not None else version.version_id > 1
        # extracted at flush: a resource written twice in one unit is extracted once
        self._pending[key] = (None if version.deleted else doc, had_rows)

    def flush(self, conn: Connection) -> None:
        """Write the queued rows on `conn` (inside the caller's transaction)."""
        if not self._pending:
            return
        stale = [key for key, (_, had_rows) in self._pending.items() if had_rows]
        extract = self._indexer.extract
        fresh = [(t, i, extract(doc)) for (t, i), (doc, _) in self._pending.items() if doc is not None]
        self._pending.clear()
        if stale:
            delete_index_many(conn, stale)
        if fresh:
            write_indexes(conn, fresh, replace=False)

    def clear(self) -> None:
        """Forget queued rows (rollback)."""
        self._pending.clear()
