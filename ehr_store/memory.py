"""In-memory `Store` for fast unit tests; passes the same contract suite as the SQL store.

Units of work are serialised by one re-entrant lock (held from the start of a unit to its
end) and keep an undo journal, so a rollback leaves nothing behind.

May import: the standard library, `ehr_store` modules (not the SQL ones).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

from ehr_store.errors import NotFound
from ehr_store.jsonio import loads
from ehr_store.model import HistoryPage, SearchResult, StoredResource
from ehr_store.repository import (
    ArchivedMessage,
    ArchiveStatus,
    IncomingMessage,
    MessageArchive,
    MessageOutcome,
    ResourceRepository,
    SearchParams,
    SenderKey,
)
from ehr_store.search import MemoryIndex
from ehr_store.settings import StoreSettings
from ehr_store.validation import check_resource_type
from ehr_store.versioning import VersionedRepository, now_utc

__all__ = ["MemoryStore", "MemoryUnitOfWork"]

Json = dict[str, Any]
Key = tuple[str, str]


class _State:
    def __init__(self, settings: StoreSettings) -> None:
        self.current: dict[Key, StoredResource] = {}
        self.versions: dict[Key, list[StoredResource]] = {}
        self.messages: dict[int, ArchivedMessage] = {}
        self.next_message_id = 1
        self.search = MemoryIndex(settings)
        self.lock = threading.RLock()


class MemoryResourceRepository(VersionedRepository):
    """`ResourceRepository` over the in-memory state, journalled by its unit of work."""

    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow
        self._s = uow.state

    def _current(self, resource_type: str, id: str, *, for_update: bool) -> StoredResource | None:
        return self._s.current.get((resource_type, id))

    def _version(self, resource_type: str, id: str, version_id: int) -> StoredResource | None:
        versions = self._s.versions.get((resource_type, id), [])
        return versions[version_id - 1] if 0 < version_id <= len(versions) else None

    def _put(self, version: StoredResource, doc: Json | None) -> None:
        key = (version.resource_type, version.id)
        old = self._s.current.get(key)
        versions = self._s.versions.setdefault(key, [])
        self._s.current[key] = replace(version, method="PUT")
        versions.append(version)
        self._s.search.index(version, doc)
        old_doc = None if old is None or old.deleted else loads(old.content)

        def undo() -> None:
            versions.pop()
            if old is None:
                self._s.current.pop(key, None)
                self._s.versions.pop(key, None)
                self._s.search.index(replace(version, deleted=True, content=b""), None)
            else:
                self._s.current[key] = old
                self._s.search.index(old, old_doc)

        self._uow.journal.append(undo)

    def _insert(self, version: StoredResource, doc: Json | None) -> bool:
        if (version.resource_type, version.id) in self._s.current:
            return False
        self._put(version, doc)
        return True

    def _replace(self, version: StoredResource, doc: Json | None, previous: int) -> bool:
        current = self._s.current.get((version.resource_type, version.id))
        if current is None or current.version_id != previous:
            return False
        self._put(version, doc)
        return True

    def read_many(self, references: Iterable[tuple[str, str]]) -> dict[Key, StoredResource]:
        """See `ResourceRepository.read_many`."""
        found: dict[Key, StoredResource] = {}
        for key in references:
            current = self._s.current.get(key)
            if current is not None and not current.deleted:
                found[key] = current
        return found

    def history(
        self,
        resource_type: str | None = None,
        id: str | None = None,
        *,
        since: datetime | None = None,
        at: datetime | None = None,
        count: int = 50,
        offset: int = 0,
    ) -> HistoryPage:
        """See `ResourceRepository.history` (FHIR R4B http §3.1.0.4)."""
        if resource_type is not None:
            check_resource_type(resource_type)
        if id is not None and resource_type is not None:
            if (resource_type, id) not in self._s.versions:
                raise NotFound(f"{resource_type}/{id} is not known")
            groups: Iterable[list[StoredResource]] = [self._s.versions[(resource_type, id)]]
        else:
            groups = (v for k, v in self._s.versions.items() if resource_type in (None, k[0]))
        picked: list[StoredResource] = []
        for versions in groups:
            if at is not None:
                before = [v for v in versions if v.last_updated <= at]
                versions = before[-1:]
            picked.extend(v for v in versions if since is None or v.last_updated >= since)
        picked.sort(key=lambda v: (v.resource_type, v.id, -v.version_id))
        picked.sort(key=lambda v: v.last_updated, reverse=True)
        page = picked[offset:offset + count]
        return HistoryPage(entries=page, total=len(picked), has_more=offset + count < len(picked))

    def search(
        self, resource_type: str | None, params: SearchParams, *, strict: bool = False
    ) -> SearchResult:
        """See `ResourceRepository.search`."""
        return self._s.search.search(self._s.current, resource_type, params, strict=strict)

    def count(self, resource_type: str | None, params: SearchParams) -> int:
        """See `ResourceRepository.count`."""
        return self._s.search.count(self._s.current, resource_type, params)


class MemoryMessageArchive:
    """`MessageArchive` in memory, journalled by its unit of work."""

    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow
        self._s = uow.state

    def _set(self, message: ArchivedMessage, old: ArchivedMessage | None) -> None:
        self._s.messages[message.id] = message

        def undo() -> None:
            if old is None:
                self._s.messages.pop(message.id, None)
            else:
                self._s.messages[message.id] = old

        self._uow.journal.append(undo)

    def add(self, raw: bytes, *, transport: str, peer: str | None, sending_application: str | None,
            sending_facility: str | None, control_id: str | None, message_type: str | None,
            charset: str | None) -> ArchivedMessage:
        """See `MessageArchive.add`."""
        message = ArchivedMessage(
            id=self._s.next_message_id, received_at=now_utc(), transport=transport, peer=peer, raw=bytes(raw),
            sending_application=sending_application, sending_facility=sending_facility,
            control_id=control_id, message_type=message_type, charset=charset, status="received",
            ack=None, ack_code=None, error=None, resources=(), attempts=1)
        self._s.next_message_id += 1
        self._set(message, None)
        return message

    def add_many(self, messages: Sequence[IncomingMessage]) -> list[ArchivedMessage]:
        """See `MessageArchive.add_many`."""
        return [
            self.add(m.raw, transport=m.transport, peer=m.peer, sending_application=m.sending_application,
                     sending_facility=m.sending_facility, control_id=m.control_id,
                     message_type=m.message_type, charset=m.charset)
            for m in messages
        ]

    def find_processed_many(self, keys: Sequence[SenderKey]) -> dict[SenderKey, ArchivedMessage]:
        """See `MessageArchive.find_processed_many`."""
        found = {key: self.find_processed(*key) for key in dict.fromkeys(keys)}
        return {key: message for key, message in found.items() if message is not None}

    def lock_keys(self, keys: Sequence[SenderKey]) -> None:
        """See `MessageArchive.lock_keys` (nothing: one writer at a time)."""
        del keys

    def find_answered_many(self, keys: Sequence[SenderKey]) -> dict[SenderKey, list[ArchivedMessage]]:
        """See `MessageArchive.find_answered_many`."""
        wanted = set(keys)
        found: dict[SenderKey, list[ArchivedMessage]] = {}
        for message in sorted(self._s.messages.values(), key=lambda m: -m.id):
            key = (message.sending_application, message.sending_facility, message.control_id or "")
            answered = message.status != "received" and message.ack is not None
            if key in wanted and message.control_id and answered:
                found.setdefault(key, []).append(message)
        return found

    def get(self, message_id: int) -> ArchivedMessage:
        """See `MessageArchive.get`. Raises: NotFound."""
        try:
            return self._s.messages[message_id]
        except KeyError:
            raise NotFound(f"archived message {message_id} is not known") from None

    def find_processed(self, sending_application: str | None, sending_facility: str | None,
                       control_id: str) -> ArchivedMessage | None:
        """See `MessageArchive.find_processed`."""
        for message in sorted(self._s.messages.values(), key=lambda m: -m.id):
            if (message.sending_application, message.sending_facility, message.control_id) == (
                    sending_application, sending_facility, control_id) and message.status != "received" \
                    and message.ack is not None:
                return message
        return None

    def finish(self, message_id: int, *, status: ArchiveStatus, ack: bytes, ack_code: str,
               error: str | None = None, resources: Sequence[str] = (), charset: str | None = None) -> None:
        """See `MessageArchive.finish`. Raises: NotFound."""
        old = self.get(message_id)
        attempts = old.attempts if old.status == "received" else old.attempts + 1
        new = replace(old, status=status, ack=bytes(ack), ack_code=ack_code, error=error,
                      resources=tuple(resources), charset=charset or old.charset, attempts=attempts)
        self._set(new, old)

    def finish_many(self, outcomes: Sequence[MessageOutcome]) -> None:
        """See `MessageArchive.finish_many`. Raises: NotFound."""
        for o in outcomes:
            self.finish(o.message_id, status=o.status, ack=o.ack, ack_code=o.ack_code, error=o.error,
                        resources=o.resources, charset=o.charset)

    def list(self, *, status: Sequence[ArchiveStatus] | None = None, limit: int = 100,
             offset: int = 0) -> list[ArchivedMessage]:
        """See `MessageArchive.list` (newest first)."""
        chosen = [m for m in self._s.messages.values() if status is None or m.status in status]
        chosen.sort(key=lambda m: -m.id)
        return chosen[offset:offset + limit]

    def received_since(self, since: datetime, *, limit: int = 50_000
                       ) -> Sequence[tuple[str | None, datetime, ArchiveStatus]]:
        """See `MessageArchive.received_since` (newest first)."""
        newest = sorted(self._s.messages.values(), key=lambda m: -m.id)[:limit]
        return [(m.sending_facility, m.received_at, m.status) for m in newest if m.received_at >= since]


class MemoryUnitOfWork:
    """One serialised transaction over the in-memory state with an undo journal."""

    def __init__(self, state: _State) -> None:
        self.state = state
        self.journal: list[Callable[[], None]] = []
        self.resources: ResourceRepository = MemoryResourceRepository(self)
        self.messages: MessageArchive = MemoryMessageArchive(self)

    def commit(self) -> None:
        """Keep everything written so far."""
        self.journal.clear()

    def rollback(self) -> None:
        """Undo everything written since the last commit, newest first."""
        while self.journal:
            self.journal.pop()()


class MemoryStore:
    """`Store` kept in process memory (`memory://`); nothing survives the process."""

    def __init__(self, settings: StoreSettings | None = None) -> None:
        self.settings = settings or StoreSettings(database_url="memory://")
        self._state = _State(self.settings)
        self.code_sets = self._state.search.code_sets  # see ehr_store.use_code_set_resolver

    @contextmanager
    def unit_of_work(self, *, write: bool = False, durable: bool = True) -> Iterator[MemoryUnitOfWork]:
        """A new transaction (units are serialised), rolled back on exit unless committed
        (`durable` has no meaning in memory)."""
        with self._state.lock:
            uow = MemoryUnitOfWork(self._state)
            try:
                yield uow
            finally:
                uow.rollback()

    def check_schema(self) -> None:
        """Memory has no schema to check."""

    def close(self) -> None:
        """Nothing to release."""
