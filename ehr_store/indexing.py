"""Wiring of the search index (`ehr_store.search`) into SQL writes and reads.

May import: sqlalchemy, the standard library, `ehr_store` modules.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from ehr_store.errors import NotSupported
from ehr_store.model import SearchResult, StoredResource
from ehr_store.repository import SearchParams
from ehr_store.settings import StoreSettings

__all__ = ["SqlIndexer"]


class SqlIndexer:
    """Index writes and searches for one SQL store (registry loaded once)."""

    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings

    def index(self, conn: Connection, version: StoredResource, doc: dict[str, Any] | None) -> None:
        """Replace the index rows of `version` (remove them for a deletion)."""
        return None

    def search(self, conn: Connection, resource_type: str | None, params: SearchParams, *,
               strict: bool) -> SearchResult:
        """Run a search. Raises: NotSupported until the search package is wired."""
        raise NotSupported("search is not available yet")

    def count(self, conn: Connection, resource_type: str | None, params: SearchParams) -> int:
        """Count a search's matches."""
        raise NotSupported("search is not available yet")


class MemorySearch:
    """Search index kept in memory for `MemoryStore`."""

    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings

    def index(self, version: StoredResource, doc: dict[str, Any] | None) -> None:
        """Replace the index entries of `version` (remove them for a deletion)."""
        return None

    def search(self, current: dict[tuple[str, str], StoredResource], resource_type: str | None,
               params: SearchParams, *, strict: bool) -> SearchResult:
        """Run a search. Raises: NotSupported until the search package is wired."""
        raise NotSupported("search is not available yet")

    def count(self, current: dict[tuple[str, str], StoredResource], resource_type: str | None,
              params: SearchParams) -> int:
        """Count a search's matches."""
        raise NotSupported("search is not available yet")
