"""SQL `MessageArchive`: raw HL7 v2 messages in `message_archive` (HL7 v2.5 §2.9 ACK replay).

May import: sqlalchemy, the standard library, `ehr_store` modules (not `ehr_store.memory`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from functools import lru_cache
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa

from ehr_store.errors import NotFound
from ehr_store.repository import ArchivedMessage, ArchiveStatus, IncomingMessage, MessageOutcome, SenderKey
from ehr_store.tables import message_archive_table as M
from ehr_store.versioning import now_utc

if TYPE_CHECKING:
    from ehr_store.sql import SqlUnitOfWork

__all__ = ["SqlMessageArchive", "row_to_message"]

FINISHED: tuple[ArchiveStatus, ...] = ("processed", "error", "rejected")


def row_to_message(row: Any) -> ArchivedMessage:
    """An `ArchivedMessage` from a `message_archive` row."""
    return ArchivedMessage(
        id=int(row.id),
        received_at=row.received_at,
        transport=row.transport,
        peer=row.peer,
        raw=bytes(row.raw),
        sending_application=row.sending_application,
        sending_facility=row.sending_facility,
        control_id=row.control_id,
        message_type=row.message_type,
        charset=row.charset,
        status=cast(ArchiveStatus, row.status),
        ack=None if row.ack is None else bytes(row.ack),
        ack_code=row.ack_code,
        error=row.error,
        resources=tuple(row.resources or ()),
        attempts=int(row.attempts),
    )


def _same(column: Any, name: str, null: bool) -> Any:
    return column.is_(None) if null else column == sa.bindparam(name)


# Statements built once (building one per call cost more than executing it).
_ADD = sa.insert(M).returning(M.c.id)
# Looked up by sender and control id only; whether a row is answered (status, ACK) is checked
# on the few rows found. With `status IN (...)` in the statement both dialects may walk the
# status index instead, i.e. every processed message: 15 ms a batch at 22,000 archived rows on
# SQLite, growing with the archive.
_FIND_PROCESSED = {
    (app_null, fac_null): sa.select(M)
    .where(_same(M.c.sending_application, "app", app_null), _same(M.c.sending_facility, "fac", fac_null),
           M.c.control_id == sa.bindparam("cid"))
    .order_by(M.c.id.desc())
    for app_null in (False, True) for fac_null in (False, True)
}


def _answered(row: Any) -> bool:
    return row.status in FINISHED and row.ack is not None
_ADD_MANY = sa.insert(M).returning(M.c.id, sort_by_parameter_order=True)


@lru_cache(maxsize=256)
def _find_processed_many(pattern: tuple[tuple[bool, bool], ...]) -> Any:
    """For keys whose (MSH-3, MSH-4) are NULL as in `pattern`: `:a<i>`, `:f<i>`, `:c<i>`. An OR
    of the per-key conditions, served by the sender/control-id index on both dialects (nothing
    else in the statement for a planner to prefer; see `_FIND_PROCESSED`)."""
    per_key = [
        sa.and_(_same(M.c.sending_application, f"a{i}", app_null),
                _same(M.c.sending_facility, f"f{i}", fac_null), M.c.control_id == sa.bindparam(f"c{i}"))
        for i, (app_null, fac_null) in enumerate(pattern)
    ]
    return sa.select(M).where(sa.or_(*per_key))


_ATTEMPTS = sa.case((M.c.status == "received", M.c.attempts), else_=M.c.attempts + 1)
_FINISH = {
    with_charset: sa.update(M).where(M.c.id == sa.bindparam("mid")).values(
        status=sa.bindparam("status"), ack=sa.bindparam("ack"), ack_code=sa.bindparam("ack_code"),
        error=sa.bindparam("error"), resources=sa.bindparam("resources"), attempts=_ATTEMPTS,
        **({"charset": sa.bindparam("charset")} if with_charset else {}),
    )
    for with_charset in (False, True)
}


_LOCK_KEYS = sa.text(
    "SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:ks AS bigint[])) WITH ORDINALITY AS t(k, n) ORDER BY n"
)


class SqlMessageArchive:
    """`MessageArchive` over one `SqlUnitOfWork` connection (never commits)."""

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

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
        """See `MessageArchive.add`."""
        conn = self._uow.connection(write=True)
        values = {
            "received_at": now_utc(), "transport": transport, "peer": peer, "raw": bytes(raw),
            "sending_application": sending_application, "sending_facility": sending_facility,
            "control_id": control_id, "message_type": message_type, "charset": charset,
            "status": "received", "ack": None, "ack_code": None, "error": None, "resources": [],
            "attempts": 1,
        }
        new_id = conn.execute(_ADD, values).scalar_one()
        return row_to_message(SimpleNamespace(id=new_id, **values))

    def add_many(self, messages: Sequence[IncomingMessage]) -> list[ArchivedMessage]:
        """See `MessageArchive.add_many`: one multi-row INSERT ... RETURNING."""
        if not messages:
            return []
        conn = self._uow.connection(write=True)
        rows: list[dict[str, Any]] = [
            {"received_at": now_utc(), "transport": m.transport, "peer": m.peer, "raw": bytes(m.raw),
             "sending_application": m.sending_application, "sending_facility": m.sending_facility,
             "control_id": m.control_id, "message_type": m.message_type, "charset": m.charset,
             "status": "received", "ack": None, "ack_code": None, "error": None, "resources": [],
             "attempts": 1}
            for m in messages
        ]
        ids = [r.id for r in conn.execute(_ADD_MANY, rows)]
        return [row_to_message(SimpleNamespace(id=i, **row)) for i, row in zip(ids, rows, strict=True)]

    def _answered_rows(self, keys: Sequence[SenderKey]) -> Iterator[Any]:
        """The answered archive rows of `keys` (one SELECT per 100 keys), in no order."""
        unique = list(dict.fromkeys(keys))
        conn = self._uow.connection(write=False)
        for start in range(0, len(unique), 100):
            chunk = unique[start:start + 100]
            pattern = tuple((app is None, fac is None) for app, fac, _ in chunk)
            params: dict[str, Any] = {}
            for i, (app, fac, cid) in enumerate(chunk):
                params.update({f"a{i}": app, f"f{i}": fac, f"c{i}": cid})
            yield from (row for row in conn.execute(_find_processed_many(pattern), params) if _answered(row))

    def find_processed_many(self, keys: Sequence[SenderKey]) -> dict[SenderKey, ArchivedMessage]:
        """See `MessageArchive.find_processed_many` (one SELECT per 100 keys)."""
        found: dict[SenderKey, ArchivedMessage] = {}
        for row in self._answered_rows(keys):
            key = (row.sending_application, row.sending_facility, row.control_id)
            if key not in found or row.id > found[key].id:
                found[key] = row_to_message(row)
        return found

    def lock_keys(self, keys: Sequence[SenderKey]) -> None:
        """See `MessageArchive.lock_keys`: one statement of `pg_advisory_xact_lock` on a 64-bit
        hash of each key (prefixed so it never meets the EMPI's blocking-key locks)."""
        conn = self._uow.connection(write=True)
        if conn.dialect.name != "postgresql" or not keys:
            return
        digests = {
            hashlib.blake2b(repr(("hl7v2-message", *key)).encode(), digest_size=8).digest() for key in keys
        }
        hashes = sorted(int.from_bytes(d, "big", signed=True) for d in digests)
        conn.execute(_LOCK_KEYS, {"ks": hashes})

    def find_answered_many(self, keys: Sequence[SenderKey]) -> dict[SenderKey, list[ArchivedMessage]]:
        """See `MessageArchive.find_answered_many` (one SELECT per 100 keys)."""
        found: dict[SenderKey, list[ArchivedMessage]] = {}
        for row in self._answered_rows(keys):
            key = (row.sending_application, row.sending_facility, row.control_id)
            found.setdefault(key, []).append(row_to_message(row))
        for messages in found.values():
            messages.sort(key=lambda m: -m.id)
        return found

    def get(self, message_id: int) -> ArchivedMessage:
        """See `MessageArchive.get`. Raises: NotFound."""
        conn = self._uow.connection(write=False)
        row = conn.execute(sa.select(M).where(M.c.id == message_id)).first()
        if row is None:
            raise NotFound(f"archived message {message_id} is not known")
        return row_to_message(row)

    def find_processed(
        self, sending_application: str | None, sending_facility: str | None, control_id: str
    ) -> ArchivedMessage | None:
        """See `MessageArchive.find_processed` (newest answered message with this MSH-3/4/10)."""
        conn = self._uow.connection(write=False)
        stmt = _FIND_PROCESSED[(sending_application is None, sending_facility is None)]
        params = {"cid": control_id}
        if sending_application is not None:
            params["app"] = sending_application
        if sending_facility is not None:
            params["fac"] = sending_facility
        row = next((r for r in conn.execute(stmt, params) if _answered(r)), None)
        return None if row is None else row_to_message(row)

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
        """See `MessageArchive.finish`; finishing an already finished message counts an attempt.

        Raises: NotFound.
        """
        conn = self._uow.connection(write=True)
        values: dict[str, Any] = {
            "mid": message_id, "status": status, "ack": bytes(ack), "ack_code": ack_code, "error": error,
            "resources": list(resources),
        }
        if charset is not None:
            values["charset"] = charset
        result = conn.execute(_FINISH[charset is not None], values)
        if result.rowcount != 1:
            raise NotFound(f"archived message {message_id} is not known")

    def finish_many(self, outcomes: Sequence[MessageOutcome]) -> None:
        """See `MessageArchive.finish_many`: one executemany UPDATE per charset variant.

        Raises: NotFound.
        """
        conn = self._uow.connection(write=True)
        for with_charset in (False, True):
            rows = [
                {"mid": o.message_id, "status": o.status, "ack": bytes(o.ack), "ack_code": o.ack_code,
                 "error": o.error, "resources": list(o.resources),
                 **({"charset": o.charset} if with_charset else {})}
                for o in outcomes if (o.charset is not None) == with_charset
            ]
            if rows and conn.execute(_FINISH[with_charset], rows).rowcount not in (len(rows), -1):
                raise NotFound("an archived message to finish is not known")

    def list(
        self, *, status: Sequence[ArchiveStatus] | None = None, limit: int = 100, offset: int = 0
    ) -> list[ArchivedMessage]:
        """See `MessageArchive.list` (newest first)."""
        conn = self._uow.connection(write=False)
        stmt = sa.select(M).order_by(M.c.id.desc()).limit(limit).offset(offset)
        if status is not None:
            stmt = stmt.where(M.c.status.in_(list(status)))
        return [row_to_message(r) for r in conn.execute(stmt)]

    def received_since(
        self, since: datetime, *, limit: int = 50_000
    ) -> Sequence[tuple[str | None, datetime, ArchiveStatus]]:
        """See `MessageArchive.received_since` (three columns, newest first, stops at `since`)."""
        conn = self._uow.connection(write=False)
        columns = (M.c.sending_facility, M.c.received_at, M.c.status)
        stmt = sa.select(*columns).order_by(M.c.id.desc()).limit(limit)
        found: list[tuple[str | None, datetime, ArchiveStatus]] = []
        result = conn.execute(stmt)
        try:
            for row in result:
                if row.received_at < since:
                    break
                found.append((row.sending_facility, row.received_at, cast(ArchiveStatus, row.status)))
        finally:
            result.close()
        return found
