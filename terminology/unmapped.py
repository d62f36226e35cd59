"""Counting the local codes that no ConceptMap maps yet, per sender.

`UnmappedLog` is the small repository protocol; `MemoryUnmappedLog` collects codes
while one message is mapped (thread-safe), and `persist` merges them into the store as
FHIR `Basic` resources (one per sender+system+code, id `unmapped-<hash>`, code
`BASE/CodeSystem/terminology-record#unmapped-code`, extension `UNMAPPED_EXT` with
`sender`, `coding`, `count`, `firstSeen`, `lastSeen`) inside the caller's unit of work,
so the counts commit with the message's resources or not at all.

`ThrottledPersister` does the same for ingestion without rewriting every record in every
batch: a code's first occurrence (in this process) is written with the message that brought
it; later occurrences are counted in memory and written with a later batch at most once per
`flush_seconds` per code (or by `flush`). Both run inside `ThrottledPersister.unit()`, entered
with the unit of work: what a unit wrote is forgotten only when it commits; when it rolls back,
the earlier batches' counts it carried are held again and its codes are due at once (the next
unit, e.g. the retry of the same messages, writes them). The list of unmapped codes is
therefore complete; its counts and `lastSeen` may lag by up to `flush_seconds`, and a crash
can lose that window of counts, never a code. Rewriting each record every batch cost ~10 % of
ingest CPU (a new version, validation, history and index rows each time).

May import: the standard library, `ehr_store` (public API), `terminology.canonical`.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar, Token
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from ehr_store import InvalidInput, NotFound, NotSupported, ResourceRepository
from terminology.canonical import BASE

Json = dict[str, Any]
RECORD_SYSTEM = f"{BASE}/CodeSystem/terminology-record"
UNMAPPED_EXT = f"{BASE}/StructureDefinition/unmapped-code"


@dataclass(frozen=True, slots=True)
class UnmappedCode:
    """A local code seen without a mapping: who sent it, how often, when first and last."""

    sender: str
    system: str
    code: str
    display: str | None
    count: int
    first_seen: datetime
    last_seen: datetime


class UnmappedLog(Protocol):
    """Where unmapped codes are counted."""

    def record(
        self,
        sender: str,
        system: str,
        code: str,
        display: str | None,
        *,
        count: int = 1,
        at: datetime | None = None,
    ) -> None:
        """Count `count` more occurrences of sender's system|code (at `at`, default now)."""
        ...

    def list(self, sender: str | None = None) -> list[UnmappedCode]:
        """Unmapped codes (of one sender, or all), most frequent first."""
        ...


class MemoryUnmappedLog:
    """`UnmappedLog` in memory (per message, or for tests); thread-safe."""

    def __init__(self) -> None:
        self._codes: dict[tuple[str, str, str], UnmappedCode] = {}
        self._lock = threading.Lock()

    def record(
        self,
        sender: str,
        system: str,
        code: str,
        display: str | None,
        *,
        count: int = 1,
        at: datetime | None = None,
    ) -> None:
        """See `UnmappedLog.record`."""
        when = at or datetime.now(UTC)
        self.add(UnmappedCode(sender, system, code, display, count, when, when))

    def add(self, item: UnmappedCode) -> None:
        """Merge a whole record: counts add up, the earliest `first_seen` and latest `last_seen`
        stay, the first display known is kept."""
        key = (item.sender, item.system, item.code)
        with self._lock:
            old = self._codes.get(key)
            self._codes[key] = item if old is None else replace(
                old,
                count=old.count + item.count,
                display=old.display or item.display,
                first_seen=min(old.first_seen, item.first_seen),
                last_seen=max(old.last_seen, item.last_seen),
            )

    def list(self, sender: str | None = None) -> list[UnmappedCode]:
        """See `UnmappedLog.list`."""
        with self._lock:
            codes = [c for c in self._codes.values() if sender is None or c.sender == sender]
        return sorted(codes, key=lambda c: (-c.count, c.sender, c.system, c.code))

    def __len__(self) -> int:
        return len(self._codes)


def _key(item: UnmappedCode) -> tuple[str, str, str]:
    return (item.sender, item.system, item.code)


def record_id(sender: str, system: str, code: str) -> str:
    """Deterministic Basic id of an unmapped-code record."""
    digest = hashlib.sha256(f"{sender}\x1f{system}\x1f{code}".encode()).hexdigest()[:32]
    return f"unmapped-{digest}"


def _to_basic(item: UnmappedCode) -> Json:
    coding: Json = {"system": item.system, "code": item.code}
    if item.display:
        coding["display"] = item.display
    return {
        "resourceType": "Basic",
        "id": record_id(item.sender, item.system, item.code),
        "code": {"coding": [{"system": RECORD_SYSTEM, "code": "unmapped-code"}]},
        "extension": [
            {
                "url": UNMAPPED_EXT,
                "extension": [
                    {"url": "sender", "valueString": item.sender},
                    {"url": "coding", "valueCoding": coding},
                    {"url": "count", "valueInteger": item.count},
                    {"url": "firstSeen", "valueDateTime": item.first_seen.isoformat(timespec="seconds")},
                    {"url": "lastSeen", "valueDateTime": item.last_seen.isoformat(timespec="seconds")},
                ],
            }
        ],
    }


def from_basic(resource: Json) -> UnmappedCode | None:
    """The record held by a Basic resource, or None when it is not one."""
    ext = next((e for e in resource.get("extension", []) if e.get("url") == UNMAPPED_EXT), None)
    if ext is None:
        return None
    parts = {
        e["url"]: next(v for k, v in e.items() if k.startswith("value")) for e in ext.get("extension", [])
    }
    coding = parts.get("coding") or {}
    return UnmappedCode(
        str(parts.get("sender")),
        coding.get("system", ""),
        coding.get("code", ""),
        coding.get("display"),
        int(parts.get("count", 0)),
        datetime.fromisoformat(parts["firstSeen"]),
        datetime.fromisoformat(parts["lastSeen"]),
    )


def persist(repo: ResourceRepository, log: UnmappedLog) -> int:
    """Merge the counts of `log` into the stored records (caller commits). Returns records written."""
    written = 0
    for item in log.list():
        rid = record_id(item.sender, item.system, item.code)
        merged = item
        try:
            old = from_basic(repo.read("Basic", rid).as_dict())
        except NotFound:
            old = None
        if old is not None:
            merged = replace(
                item,
                count=old.count + item.count,
                first_seen=min(old.first_seen, item.first_seen),
                last_seen=max(old.last_seen, item.last_seen),
                display=old.display or item.display,
            )
        repo.update("Basic", rid, _to_basic(merged))
        written += 1
    return written


def current_resources(repo: ResourceRepository, resource_type: str, page: int = 200) -> Iterator[Json]:
    """Every current (non-deleted) resource of a type, paged through search; through type
    history when the store cannot search that type (`Basic` has no search parameters in
    the store's registry) (FHIR R4B http §3.1.0.4)."""
    try:
        offset = 0
        while True:
            result = repo.search(resource_type, [("_count", str(page)), ("_offset", str(offset))])
            for match in result.matches:
                yield match.as_dict()
            if not result.has_more:
                return
            offset += page
    except (NotSupported, InvalidInput):
        pass
    seen: set[str] = set()
    offset = 0
    while True:
        hist = repo.history(resource_type, count=page, offset=offset)
        ids = [i for i in dict.fromkeys(v.id for v in hist.entries) if i not in seen]
        seen.update(ids)
        current = repo.read_many((resource_type, i) for i in ids)
        for rid in ids:
            if (resource_type, rid) in current:
                yield current[(resource_type, rid)].as_dict()
        if not hist.has_more:
            return
        offset += page


def stored_unmapped(repo: ResourceRepository, sender: str | None = None) -> list[UnmappedCode]:
    """The persisted unmapped-code records (of one sender, or all), most frequent first."""
    out = [r for r in (from_basic(b) for b in current_resources(repo, "Basic")) if r is not None]
    out = [r for r in out if sender is None or r.sender == sender]
    return sorted(out, key=lambda c: (-c.count, c.sender, c.system, c.code))


class UnmappedUnit:
    """What one unit of work took from a `ThrottledPersister` (`ThrottledPersister.unit`).

    `taken`: counts of earlier, committed batches written in this unit; `held`: this unit's
    own counts held back by the window; `keys`: the codes written in this unit."""

    __slots__ = ("_token", "held", "keys", "owner", "taken")

    def __init__(self, owner: ThrottledPersister) -> None:
        self.owner = owner
        self.taken = MemoryUnmappedLog()
        self.held = MemoryUnmappedLog()
        self.keys: set[tuple[str, str, str]] = set()
        self._token: Token[UnmappedUnit | None] | None = None

    def __enter__(self) -> UnmappedUnit:
        self._token = _UNIT.set(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_exc: object) -> None:
        if self._token is not None:
            _UNIT.reset(self._token)
        self.owner._settle(self, committed=exc_type is None)


_UNIT: ContextVar[UnmappedUnit | None] = ContextVar("unmapped_unit", default=None)


class ThrottledPersister:
    """`persist` for ingestion, at most once per `flush_seconds` per code (module docstring).

    Thread-safe. `clock`: monotonic seconds (tests pass their own). Call `persist` and `flush`
    inside `with persister.unit():` around the unit of work, so that what a unit that rolls
    back carried is not lost; outside a unit what they write is forgotten at once."""

    def __init__(self, flush_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.flush_seconds = flush_seconds
        self._clock = clock
        self._written: dict[tuple[str, str, str], float] = {}  # key -> when last handed out
        self._pending = MemoryUnmappedLog()  # counts of committed batches not written yet
        self._lock = threading.Lock()

    def unit(self) -> UnmappedUnit:
        """A context manager around one unit of work, entered with it, whose `commit()` is the
        last statement inside. The block ending normally means the unit committed: its held
        counts become pending. Ending by an exception means it rolled back: the counts of
        earlier batches it carried are pending again and its codes due at once (the unit's
        own counts are dropped: a rolled-back message counts nothing; a retry counts it again)."""
        return UnmappedUnit(self)

    def _settle(self, unit: UnmappedUnit, *, committed: bool) -> None:
        with self._lock:
            if committed:
                for item in unit.held.list():
                    self._pending.add(item)
                return
            for item in unit.taken.list():
                self._pending.add(item)
            for key in unit.keys:
                self._written.pop(key, None)

    def persist(self, repo: ResourceRepository, log: UnmappedLog) -> int:
        """Write new codes and due counts of `log` (plus earlier pending counts) through `repo`
        (caller commits). Returns records written. Raises: the repository's errors."""
        unit = self._unit()
        now = self._clock()
        due = MemoryUnmappedLog()
        with self._lock:
            earlier, self._pending = self._pending, MemoryUnmappedLog()
            items = [(i, True) for i in log.list()] + [(i, False) for i in earlier.list()]
            handed = {key for key in {_key(i) for i, _own in items} if self._is_due(key, now)}
            for item, own in items:
                if _key(item) in handed:
                    due.add(item)
                    if unit is not None and not own:
                        unit.taken.add(item)
                elif unit is not None and own:
                    unit.held.add(item)  # pending once the unit commits
                else:
                    self._pending.add(item)
            for key in handed:
                self._written[key] = now
            if unit is not None:
                unit.keys |= handed
        return persist(repo, due) if len(due) else 0

    def _is_due(self, key: tuple[str, str, str], now: float) -> bool:
        last = self._written.get(key)
        return last is None or now - last >= self.flush_seconds

    def _unit(self) -> UnmappedUnit | None:
        unit = _UNIT.get()
        return unit if unit is not None and unit.owner is self else None

    @property
    def pending(self) -> int:
        """Codes with counts of committed batches not written yet."""
        with self._lock:
            return len(self._pending)

    def flush(self, repo: ResourceRepository) -> int:
        """Write every pending count now (caller commits). Returns records written."""
        unit = self._unit()
        with self._lock:
            pending, self._pending = self._pending, MemoryUnmappedLog()
            now = self._clock()
            for item in pending.list():
                self._written[_key(item)] = now
                if unit is not None:
                    unit.taken.add(item)
                    unit.keys.add(_key(item))
        return persist(repo, pending) if len(pending) else 0
