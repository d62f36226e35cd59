"""The EMPI's own storage contract (`EmpiIndex`) and its value types.

Implemented over SQL (`ehr_store.empi.sql_index`, tables in `ehr_store.empi.tables`) and in
memory (`ehr_store.empi.memory_index`); both write inside the caller's unit of work and
never commit.

May import: the standard library, `ehr_store.empi.features`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from ehr_store.empi.features import Features

ReviewStatus = Literal["open", "linked", "separated", "merged"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A source Patient found through a blocking key."""

    source_id: str
    golden_id: str
    features: Features


@dataclass(frozen=True, slots=True)
class LinkRecord:
    """One link (current when `undone_at` is None). `created_by`: `system` or a user name."""

    id: int
    source_id: str
    golden_id: str
    score: float | None
    rule: str
    created_at: datetime
    created_by: str
    undone_at: datetime | None = None
    undone_by: str | None = None


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """One review-queue entry: `source_id` might be the resident `golden_id`."""

    id: int
    source_id: str
    golden_id: str
    score: float
    rule: str
    details: dict[str, Any]
    status: ReviewStatus
    created_at: datetime
    resolved_at: datetime | None = None
    resolved_by: str | None = None


class EmpiIndex(Protocol):
    """Candidate index, link history and review queue inside one unit of work."""

    def get_record(self, source_id: str) -> Candidate | None:
        """The indexed source Patient, or None."""
        ...

    def put_record(self, source_id: str, golden_id: str, features: Features, keys: Sequence[str]) -> None:
        """Insert or replace a source's golden, features and blocking keys."""
        ...

    def set_golden(self, source_id: str, golden_id: str) -> None:
        """Point an indexed source at another golden Patient. Raises: KeyError (unknown source)."""
        ...

    def candidates(self, keys: Sequence[str], *, limit_per_key: int) -> list[Candidate]:
        """Sources sharing any of `keys` (at most `limit_per_key` per key), deduplicated."""
        ...

    def lookup(
        self, source_id: str, keys: Sequence[str], *, limit_per_key: int
    ) -> tuple[Candidate | None, list[Candidate]]:
        """`(get_record(source_id), candidates(keys, ...))` in one round trip (a source
        that is probably new: its record is looked up anyway, never assumed absent)."""
        ...

    def lock_keys(self, keys: Sequence[str]) -> None:
        """Hold the blocking keys of a new source until the unit of work ends, so two units
        matching the same person one after the other see each other's record (PostgreSQL:
        transaction-level advisory locks; a single-writer store needs none)."""
        ...

    def sources_of(self, golden_id: str) -> list[str]:
        """Source Patient ids currently under `golden_id`, sorted."""
        ...

    def add_link(
        self, source_id: str, golden_id: str, *, score: float | None, rule: str, at: datetime, by: str
    ) -> LinkRecord:
        """Record a new current link (the caller undoes the previous one first)."""
        ...

    def undo_links(self, source_id: str, *, at: datetime, by: str) -> int:
        """Mark the source's current links undone; returns how many."""
        ...

    def links(self, *, source_id: str | None = None, golden_id: str | None = None) -> list[LinkRecord]:
        """Link history (current and undone), oldest first."""
        ...

    def add_review(
        self,
        source_id: str,
        golden_id: str,
        *,
        score: float,
        rule: str,
        details: dict[str, Any],
        at: datetime,
    ) -> ReviewItem:
        """Queue a possible match (status `open`)."""
        ...

    def reviews(
        self,
        *,
        status: ReviewStatus | None = "open",
        limit: int = 50,
        offset: int = 0,
        source_id: str | None = None,
    ) -> list[ReviewItem]:
        """Review items (of one source Patient when `source_id` is given), oldest first."""
        ...

    def get_review(self, review_id: int) -> ReviewItem | None:
        """One review item, or None."""
        ...

    def resolve_review(self, review_id: int, *, status: ReviewStatus, at: datetime, by: str) -> None:
        """Close a review item with the decision taken."""
        ...
