"""Value types the store hands to its callers.

Shapes only; no database code. May import: the standard library, `ehr_store.errors`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson

from ehr_store.errors import Issue

HistoryMethod = Literal["POST", "PUT", "DELETE", "PATCH"]


@dataclass(frozen=True, slots=True)
class StoredResource:
    """One version of a resource as stored.

    `content` is the JSON document exactly as served (UTF-8 bytes, `meta.versionId`
    and `meta.lastUpdated` already set, decimals as received); empty for a deletion.
    `last_updated` is timezone-aware UTC. `method` is the interaction that made this
    version (for `_history` Bundle entries, FHIR R4B http §3.1.0.4.1).
    """

    resource_type: str
    id: str
    version_id: int
    last_updated: datetime
    deleted: bool
    content: bytes
    method: HistoryMethod = "PUT"

    @property
    def reference(self) -> str:
        """`Type/id` relative reference."""
        return f"{self.resource_type}/{self.id}"

    @property
    def etag(self) -> str:
        """Weak ETag `W/"n"` (FHIR R4B http §3.1.0.5.3)."""
        return f'W/"{self.version_id}"'

    def as_dict(self) -> dict[str, Any]:
        """Parse `content` into a dict (floats for decimals; use only where precision does not matter)."""
        result: dict[str, Any] = orjson.loads(self.content)
        return result


@dataclass(slots=True)
class HistoryPage:
    """A page of versions, newest first (FHIR R4B http §3.1.0.4)."""

    entries: list[StoredResource]
    total: int | None
    has_more: bool


@dataclass(slots=True)
class SearchResult:
    """A page of search matches plus `_include`/`_revinclude` resources.

    `total` is None unless `_total=accurate` (or `_summary=count`) asked for it.
    `has_more` says whether a next page exists. `warnings` are issues for unknown
    or ignored parameters under lenient handling.
    """

    matches: list[StoredResource]
    included: list[StoredResource] = field(default_factory=list)
    total: int | None = None
    has_more: bool = False
    warnings: list[Issue] = field(default_factory=list)
