"""`EmpiIndex` in memory, for the in-memory store, unit tests and benchmarks.

`MemoryEmpiState` holds the tables as dicts (shared by all units of work of one store);
`MemoryEmpiIndex(state, journal)` writes to it immediately and appends undo steps to the
memory unit of work's journal, so that the unit's rollback discards EMPI writes too
(standalone, `rollback()`/`commit()` here do the same).

May import: the standard library, `ehr_store.empi.{features,index}`.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any

from ehr_store.empi.features import Features
from ehr_store.empi.index import Candidate, LinkRecord, ReviewItem, ReviewStatus


@dataclass
class MemoryEmpiState:
    """The EMPI tables of one in-memory store."""

    records: dict[str, Candidate] = field(default_factory=dict)
    keys_of: dict[str, tuple[str, ...]] = field(default_factory=dict)
    blocks: defaultdict[str, dict[str, None]] = field(default_factory=lambda: defaultdict(dict))
    links: list[LinkRecord] = field(default_factory=list)
    reviews: list[ReviewItem] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)


class MemoryEmpiIndex:
    """See `ehr_store.empi.index.EmpiIndex`."""

    def __init__(self, state: MemoryEmpiState, journal: list[Callable[[], None]] | None = None) -> None:
        """`journal`: the memory unit of work's undo list, so its rollback also undoes EMPI writes."""
        self._s = state
        self._undo: list[Callable[[], None]] = journal if journal is not None else []

    # -- transaction --------------------------------------------------------------------------
    def commit(self) -> None:
        """Keep the writes made so far."""
        self._undo.clear()

    def rollback(self) -> None:
        """Undo the writes made since the last commit, newest first."""
        with self._s.lock:
            while self._undo:
                self._undo.pop()()

    # -- records ------------------------------------------------------------------------------
    def get_record(self, source_id: str) -> Candidate | None:
        return self._s.records.get(source_id)

    def _set(self, source_id: str, record: Candidate | None, keys: tuple[str, ...]) -> None:
        s = self._s
        for key in s.keys_of.pop(source_id, ()):
            s.blocks[key].pop(source_id, None)
        s.records.pop(source_id, None)
        if record is not None:
            s.records[source_id] = record
            s.keys_of[source_id] = keys
            for key in keys:
                s.blocks[key][source_id] = None

    def _journal(self, source_id: str) -> None:
        old, old_keys = self._s.records.get(source_id), self._s.keys_of.get(source_id, ())
        self._undo.append(lambda: self._set(source_id, old, old_keys))

    def put_record(self, source_id: str, golden_id: str, features: Features, keys: Sequence[str]) -> None:
        with self._s.lock:
            self._journal(source_id)
            self._set(source_id, Candidate(source_id, golden_id, features), tuple(dict.fromkeys(keys)))

    def set_golden(self, source_id: str, golden_id: str) -> None:
        with self._s.lock:
            record = self._s.records[source_id]
            self._journal(source_id)
            self._s.records[source_id] = replace(record, golden_id=golden_id)

    def candidates(self, keys: Sequence[str], *, limit_per_key: int) -> list[Candidate]:
        with self._s.lock:
            ids: dict[str, None] = {}
            for key in dict.fromkeys(keys):
                members = self._s.blocks.get(key, {})
                for n, source_id in enumerate(members):
                    if n >= limit_per_key:
                        break
                    ids[source_id] = None
            return [self._s.records[i] for i in ids if i in self._s.records]

    def lookup(
        self, source_id: str, keys: Sequence[str], *, limit_per_key: int
    ) -> tuple[Candidate | None, list[Candidate]]:
        with self._s.lock:
            return self.get_record(source_id), self.candidates(keys, limit_per_key=limit_per_key)

    def sources_of(self, golden_id: str) -> list[str]:
        return sorted(r.source_id for r in list(self._s.records.values()) if r.golden_id == golden_id)

    # -- links --------------------------------------------------------------------------------
    def add_link(
        self, source_id: str, golden_id: str, *, score: float | None, rule: str, at: datetime, by: str
    ) -> LinkRecord:
        with self._s.lock:
            link = LinkRecord(len(self._s.links) + 1, source_id, golden_id, score, rule, at, by)
            self._s.links.append(link)
            self._undo.append(lambda: self._s.links.remove(link))
            return link

    def undo_links(self, source_id: str, *, at: datetime, by: str) -> int:
        with self._s.lock:
            changed = 0
            for n, link in enumerate(self._s.links):
                if link.source_id == source_id and link.undone_at is None:
                    self._s.links[n] = replace(link, undone_at=at, undone_by=by)
                    self._undo.append(partial(self._s.links.__setitem__, n, link))
                    changed += 1
            return changed

    def links(self, *, source_id: str | None = None, golden_id: str | None = None) -> list[LinkRecord]:
        return [
            link
            for link in list(self._s.links)
            if (source_id is None or link.source_id == source_id)
            and (golden_id is None or link.golden_id == golden_id)
        ]

    # -- review queue -------------------------------------------------------------------------
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
        with self._s.lock:
            item = ReviewItem(
                len(self._s.reviews) + 1, source_id, golden_id, score, rule, details, "open", at
            )
            self._s.reviews.append(item)
            self._undo.append(lambda: self._s.reviews.remove(item))
            return item

    def lock_keys(self, keys: Sequence[str]) -> None:
        del keys  # the memory store's write units run one at a time

    def reviews(
        self,
        *,
        status: ReviewStatus | None = "open",
        limit: int = 50,
        offset: int = 0,
        source_id: str | None = None,
    ) -> list[ReviewItem]:
        items = [
            r
            for r in list(self._s.reviews)
            if (status is None or r.status == status) and (source_id is None or r.source_id == source_id)
        ]
        return items[offset : offset + limit]

    def get_review(self, review_id: int) -> ReviewItem | None:
        return next((r for r in list(self._s.reviews) if r.id == review_id), None)

    def resolve_review(self, review_id: int, *, status: ReviewStatus, at: datetime, by: str) -> None:
        with self._s.lock:
            for n, item in enumerate(self._s.reviews):
                if item.id == review_id:
                    self._s.reviews[n] = replace(item, status=status, resolved_at=at, resolved_by=by)
                    self._undo.append(partial(self._s.reviews.__setitem__, n, item))
