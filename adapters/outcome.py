"""Shapes and rules of ingestion outcomes: `IngestResult`, `Accepted`, which ACKs MSH-15/16
ask for (HL7 Table 0155), when a duplicate replays its ACK, and how store and unexpected
errors map to HL7 Table 0357 codes.

May import: the standard library, `ehr_store` (public API), `adapters.hl7v2`.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from adapters.hl7v2.ack import read_ack
from adapters.hl7v2.charset import Decoded
from adapters.hl7v2.er7 import Message
from adapters.hl7v2.errors import (
    APPLICATION_INTERNAL_ERROR,
    APPLICATION_RECORD_LOCKED,
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    TABLE_VALUE_NOT_FOUND,
    ErrLocation,
    Hl7ContentError,
    Hl7Error,
    Hl7Rejection,
)
from adapters.hl7v2.header import Header
from ehr_store import ArchivedMessage, Conflict, DomainError, Unavailable, UnitOfWork, VersionConflict

log = logging.getLogger("adapters.ingest")


@dataclass(frozen=True, slots=True)
class IngestResult:
    """Outcome of one message: the frames to send back in order (first = the ACK the
    connection gets; in enhanced mode a second frame may carry the application ACK)."""

    message_id: int | None
    frames: tuple[bytes, ...]
    ack_code: str
    outcome: str
    duplicate: bool = False
    codec: str = "utf-8"

    @property
    def ack(self) -> bytes:
        """The last frame: the application ACK when one is sent, else the only ACK."""
        return self.frames[-1]


@dataclass(slots=True)
class Accepted:
    """A message past the accept step, ready for `IngestService.process`."""

    header: Header
    raw: bytes
    message_id: int | None
    codec: str
    frames: list[bytes] = field(default_factory=list)
    done: bool = False
    outcome: str = ""
    decoded: Decoded | None = None
    message: Message | None = None
    duplicate: bool = False
    received_at: datetime | None = None
    # an earlier copy of the same message (sender, MSH-10, content) in the same batch: this one
    # is not archived or written again and gets the leader's frames
    leader: Accepted | None = None
    transport: str = ""
    peer: str | None = None
    replay: bool = False
    # a forced replay of a processed message (`hie replay --force`): written again even when
    # another copy of it was processed (no copy check in the write unit)
    reprocess: bool = False


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """What one message did, handed to the `MessageHook` inside the unit of work that records
    its outcome (for the AuditEvent of issue 6; the hook is the composition root's).

    `status`: processed, error or rejected; `ack_code`: MSA-1 the sender got (AA, AE, AR, CA,
    CE, CR); `written`: (type, id, created) of each resource this message wrote (resources
    found unchanged are not written again and not listed); `replay`: `IngestService.replay`.
    """

    message_id: int | None
    transport: str
    peer: str | None
    sending_application: str | None
    sending_facility: str | None
    control_id: str | None
    message_type: str | None
    status: str
    ack_code: str
    error: str | None = None
    written: tuple[tuple[str, str, bool], ...] = ()
    replay: bool = False


#: Called with (unit of work, the records of the messages whose outcome it writes) right before
#: that unit commits: writes in the hook commit (or roll back) with the messages' own writes.
MessageHook = Callable[[UnitOfWork, Sequence[MessageRecord]], None]


def message_record(
    acc: Accepted,
    status: str,
    ack_code: str,
    error: str | None = None,
    written: Sequence[tuple[str, str, bool]] = (),
) -> MessageRecord:
    """The `MessageRecord` of an accepted message."""
    h = acc.header
    return MessageRecord(
        acc.message_id,
        acc.transport,
        acc.peer,
        h.sending_application,
        h.sending_facility,
        h.control_id,
        h.message_code,
        status,
        ack_code,
        error,
        tuple(written),
        acc.replay,
    )


class InFlight:
    """Per-sender-key locks: concurrent `ingest` calls for the same (MSH-3, MSH-4, MSH-10) run
    one after the other, so a copy sent on another connection while the first is still being
    processed finds the first's ACK instead of being processed again. Thread-safe."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held: dict[tuple[str | None, str | None, str], tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, header: Header) -> Iterator[None]:
        """Hold the key of `header` (nothing when MSH-10 is empty) for the with-block."""
        if not header.control_id:
            yield
            return
        key = (header.sending_application, header.sending_facility, header.control_id)
        with self._guard:
            lock, users = self._held.get(key, (threading.Lock(), 0))
            self._held[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._held[key]
                if users == 1:
                    del self._held[key]
                else:
                    self._held[key] = (lock, users - 1)


def ack_wanted(condition: str, success: bool) -> bool:
    """MSH-15/MSH-16 (HL7 Table 0155): AL always, NE never, ER on error, SU on success."""
    cond = condition.upper()
    return cond == "AL" or (cond == "ER" and not success) or (cond == "SU" and success)


def content_digest(raw: bytes) -> bytes:
    """SHA-256 of a message's bytes without MLLP framing (VT, FS), surrounding blanks and
    trailing segment terminators; CR LF and LF count as CR. Two sends of one message match."""
    body = raw.strip(b"\x0b\x1c\r\n \t").replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    return hashlib.sha256(body).digest()


def duplicate_of(earlier: Sequence[ArchivedMessage], raw: bytes) -> ArchivedMessage | None:
    """The earlier answered message with the same (MSH-3, MSH-4, MSH-10) that `raw` is a resend
    of (HL7 v2.5 §2.9.2 duplicate detection), whose ACK is to be replayed; None when `raw` is
    processed as a new message. `earlier`: every answered message of the key, newest first.

    A resend is the same content (`content_digest`), matched against every earlier message: a
    sender that reused a control id for other content and then resends the first message gets
    the first message's ACK, not a reprocessing that would write its old data over the newer.
    After an error the ACK is replayed only for a non-transient error (207/206 are retried).
    A DIFFERENT message reusing the control id (a sender that reset its counter) is processed
    as a new message (never dropped) and the reuse is logged at WARNING with the archive id only.
    """
    digest = content_digest(raw)
    match = next((m for m in earlier if content_digest(m.raw) == digest), None)
    if match is None:
        if earlier:
            log.warning(
                "control id of archived message %s reused by a message with different content; "
                "processing it as a new message",
                earlier[0].id,
            )
        return None
    if match.status == "processed":
        return match
    transient = (match.error or "").startswith((APPLICATION_INTERNAL_ERROR, APPLICATION_RECORD_LOCKED))
    return None if transient else match


_ACK_TYPES = ("AL", "NE", "ER", "SU")


def check_frame(header: Header, message: Message) -> None:
    """Accept-level checks of a decoded message (HL7 v2.5 §2.9.2, Appendix C.4 MLLP: one
    message per frame). Raises: Hl7Rejection 100 (a second MSH, or FHS/BHS batch envelope, in
    the frame or body); Hl7ContentError 101 (MSH-10 empty), 103 (MSH-15/16 not in Table 0155).
    """
    names = [seg.name for seg in message.segments]
    if names.count("MSH") > 1 or {"FHS", "BHS"} & set(names):
        raise Hl7Rejection(
            SEGMENT_SEQUENCE_ERROR,
            "more than one message in a frame: send each message in its own MLLP frame or HTTP body",
            ErrLocation("MSH", 2) if names.count("MSH") > 1 else ErrLocation("MSH", 1),
        )
    if not header.control_id:
        raise Hl7ContentError(
            REQUIRED_FIELD_MISSING, "MSH-10 (message control ID) is required", ErrLocation("MSH", 1, 10)
        )
    for number, value in ((15, header.accept_ack_type), (16, header.application_ack_type)):
        if value and value.upper() not in _ACK_TYPES:
            raise Hl7ContentError(
                TABLE_VALUE_NOT_FOUND,
                f"MSH-{number} {value!r} is not in HL7 Table 0155 (AL, NE, ER, SU)",
                ErrLocation("MSH", 1, number),
            )


def msa_code(frame: bytes) -> str:
    """MSA-1 of an ACK we built."""
    return read_ack(frame).code


def error_text(exc: Hl7Error) -> str:
    where = f" {exc.location.fhir_expression()}" if exc.location else ""
    return f"{exc.code}{where}: {exc.text}"


def as_hl7_error(exc: Exception) -> Hl7Error:
    """Store and unexpected errors → Table 0357: validation → AE 102, lost race → AR 206,
    unavailable or anything else → AR 207 (logged with its traceback)."""
    if isinstance(exc, Conflict | VersionConflict):  # a concurrent writer won the race
        return Hl7Rejection(APPLICATION_RECORD_LOCKED, f"record locked, send again: {exc}")
    if isinstance(exc, Unavailable):
        return Hl7Rejection(
            APPLICATION_INTERNAL_ERROR, "store unavailable; message kept, send again or replay"
        )
    if isinstance(exc, DomainError):
        exprs = ", ".join(e for i in exc.issues for e in i.expression)
        return Hl7ContentError(
            DATA_TYPE_ERROR, f"resource does not validate: {exc}" + (f" ({exprs})" if exprs else "")
        )
    log.exception("unexpected error while processing a message")
    return Hl7Rejection(APPLICATION_INTERNAL_ERROR, f"application internal error ({type(exc).__name__})")
