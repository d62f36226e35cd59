"""The storage contract: `ResourceRepository`, `MessageArchive`, `UnitOfWork`, `Store`.

Both implementations (SQL in `ehr_store.sql`, in-memory in `ehr_store.memory`) pass
the one contract suite in `tests/contract/`. Repositories never commit: the unit of
work commits once per request or per HL7 message.

Resource documents are plain JSON dicts as produced by `ehr_store.jsonio.loads`
(decimals as `decimal.Decimal`, so `1.50` stays `1.50`). Every write is validated
once with `fhir.resources.R4B` and raises `InvalidInput`/`Unprocessable` with
FHIR issues (expression = FHIRPath of the bad element) when it does not validate.

May import: the standard library, `ehr_store.errors`, `ehr_store.model`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from ehr_store.model import HistoryMethod, HistoryPage, SearchResult, StoredResource

Json = dict[str, Any]
SearchParams = Sequence[tuple[str, str]]
"""Search parameters as received: (name including modifier, raw value) pairs, in order."""


class ResourceRepository(Protocol):
    """CRUD, versions, history and search over all resource types (FHIR R4B http §3.1.0)."""

    def create(self, resource: Json, *, id: str | None = None) -> StoredResource:
        """Store a new resource; the server assigns the id unless `id` is given (used by
        ingestion's deterministic ids and by transactions).

        Raises: InvalidInput (not a resource / fails validation), Conflict (id exists).
        """
        ...

    def read(self, resource_type: str, id: str) -> StoredResource:
        """Current version. Raises: NotFound, Gone (deleted; carries the deletion version)."""
        ...

    def vread(self, resource_type: str, id: str, version_id: int) -> StoredResource:
        """A given version. Raises: NotFound; Gone if that version is a deletion."""
        ...

    def read_many(self, references: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StoredResource]:
        """Current, non-deleted versions of many resources in one round-trip; missing ones are absent."""
        ...

    def current_versions(self, references: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Current version ids (`meta.versionId`) of the non-deleted resources among
        `references`, in one round-trip without their content and without locking them;
        missing and deleted ones are absent."""
        ...

    def prefetch(self, references: Iterable[tuple[str, str]]) -> None:
        """Load the current rows of resources this unit of work is about to write, in one
        round-trip (locked on PostgreSQL, `SELECT ... FOR UPDATE`), so that later reads and
        writes of them in the unit need no statement of their own. An optimisation only:
        results are the same with or without it."""
        ...

    def update(
        self,
        resource_type: str,
        id: str,
        resource: Json,
        *,
        if_match: int | None = None,
        method: HistoryMethod = "PUT",
    ) -> tuple[StoredResource, bool]:
        """Replace (or create, update-as-create) `resource_type/id`. Returns (stored, created).

        An update whose content equals the current version (ignoring meta.versionId/lastUpdated)
        returns the current version unchanged (no new version). `method` ("PUT", or "PATCH"
        after a JSON Patch) is recorded in history. `created` is True also when a deleted
        resource is brought back.
        Raises: InvalidInput (id or type mismatch, validation), VersionConflict (If-Match stale).
        """
        ...

    def delete(self, resource_type: str, id: str, *, if_match: int | None = None) -> StoredResource | None:
        """Soft-delete; returns the deletion version, or None when there was nothing to delete."""
        ...

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
        """Instance (type+id), type (type only) or system (neither) history, newest first.

        Raises: NotFound (instance history of an unknown resource).
        """
        ...

    def search(
        self, resource_type: str | None, params: SearchParams, *, strict: bool = False
    ) -> SearchResult:
        """Run a FHIR search (FHIR R4B search §3.1.1), including `_include`, `_revinclude`,
        `_sort`, `_count`, `_offset`, `_total`, `_summary=count`.

        `resource_type` None means a system-level search (`_type` may narrow it).
        Raises: InvalidInput (bad value, or unknown parameter when `strict`).
        """
        ...

    def count(self, resource_type: str | None, params: SearchParams) -> int:
        """Number of matches of a search, ignoring paging."""
        ...


ArchiveStatus = Literal["received", "processed", "error", "rejected"]


@dataclass(frozen=True, slots=True)
class ArchivedMessage:
    """One inbound HL7 v2 message as archived (raw bytes as received, before anything else)."""

    id: int
    received_at: datetime
    transport: str
    peer: str | None
    raw: bytes
    sending_application: str | None
    sending_facility: str | None
    control_id: str | None
    message_type: str | None
    charset: str | None
    status: ArchiveStatus
    ack: bytes | None
    ack_code: str | None
    error: str | None
    resources: tuple[str, ...]
    attempts: int


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A raw message to archive (see `MessageArchive.add`)."""

    raw: bytes
    transport: str
    peer: str | None
    sending_application: str | None
    sending_facility: str | None
    control_id: str | None
    message_type: str | None
    charset: str | None


SenderKey = tuple[str | None, str | None, str]
"""(MSH-3 sending application, MSH-4 sending facility, MSH-10 control id)."""


@dataclass(frozen=True, slots=True)
class MessageOutcome:
    """How one archived message ended (see `MessageArchive.finish`)."""

    message_id: int
    status: ArchiveStatus
    ack: bytes
    ack_code: str
    error: str | None = None
    resources: Sequence[str] = ()
    charset: str | None = None


class MessageArchive(Protocol):
    """Raw HL7 v2 archive, duplicate detection and error queue (never lose a message)."""

    def add(
        self,
        raw: bytes,
        *,
        transport: str,
        peer: str | None,
        sending_application: str | None,
        sending_facility: str | None,
        control_id: str | None,
        message_type: str | None,
        charset: str | None,
    ) -> ArchivedMessage:
        """Archive a raw message with status `received`; returns it with its id."""
        ...

    def add_many(self, messages: Sequence[IncomingMessage]) -> list[ArchivedMessage]:
        """`add` for several messages in one round-trip; returned in the same order."""
        ...

    def get(self, message_id: int) -> ArchivedMessage:
        """Raises: NotFound."""
        ...

    def find_processed(
        self, sending_application: str | None, sending_facility: str | None, control_id: str
    ) -> ArchivedMessage | None:
        """The earlier message with this (MSH-3, MSH-4, MSH-10) that got an ACK, if any."""
        ...

    def find_processed_many(self, keys: Sequence[SenderKey]) -> dict[SenderKey, ArchivedMessage]:
        """`find_processed` for several keys in one round-trip; keys without one are absent."""
        ...

    def lock_keys(self, keys: Sequence[SenderKey]) -> None:
        """Hold (MSH-3, MSH-4, MSH-10) keys until this unit ends, so units of several processes
        that write copies of one message run one after the other (PostgreSQL: transaction-level
        advisory locks, taken in sorted order; SQLite and memory: nothing, their write units
        already run one at a time)."""
        ...

    def find_answered_many(self, keys: Sequence[SenderKey]) -> dict[SenderKey, list[ArchivedMessage]]:
        """Every answered message (finished, with an ACK) of each key, newest first, in one
        round-trip (duplicate detection against all earlier messages that reused a control
        id, HL7 v2.5 §2.9.2); keys without one are absent."""
        ...

    def finish(
        self,
        message_id: int,
        *,
        status: ArchiveStatus,
        ack: bytes,
        ack_code: str,
        error: str | None = None,
        resources: Sequence[str] = (),
        charset: str | None = None,
    ) -> None:
        """Record the outcome and the ACK sent (and the charset finally used)."""
        ...

    def finish_many(self, outcomes: Sequence[MessageOutcome]) -> None:
        """`finish` for several messages in one round-trip. Raises: NotFound (any unknown id)."""
        ...

    def list(
        self, *, status: Sequence[ArchiveStatus] | None = None, limit: int = 100, offset: int = 0
    ) -> list[ArchivedMessage]:
        """Newest first."""
        ...

    def received_since(
        self, since: datetime, *, limit: int = 50_000
    ) -> Sequence[tuple[str | None, datetime, ArchiveStatus]]:
        """(MSH-4 sending facility, received_at, status) of the messages received at or after
        `since`, newest first, at most `limit` — feed statistics without loading raw messages."""
        ...


class UnitOfWork(Protocol):
    """One transaction: everything written through it commits together or not at all."""

    resources: ResourceRepository
    messages: MessageArchive

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class Store(Protocol):
    """A database (or memory) holding resources and the message archive."""

    def unit_of_work(
        self, *, write: bool = False, durable: bool = True
    ) -> AbstractContextManager[UnitOfWork]:
        """A new transaction; rolled back on exit unless committed.

        `write=True` says the unit will write after reading (a transaction Bundle, a
        conditional write): SQLite then takes its write lock up front. Plain writes work
        without it. `durable=False`: its commit is atomic and visible at once but does not
        wait for the disk, so a power loss or OS crash may undo it until the next durable
        commit on the database, which makes it durable too (SQLite's and PostgreSQL's WAL
        are flushed in order). Only for records nobody has been told about yet, e.g. a
        message archived before the durable commit its ACK waits for."""
        ...

    def check_schema(self) -> None:
        """Raises: Unavailable (cannot connect) or Unprocessable naming `hie db upgrade`
        when the database is not at the current schema revision."""
        ...

    def close(self) -> None: ...

