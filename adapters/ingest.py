"""The HL7 v2 ingest service: one exception boundary from raw bytes to the ACK
(HL7 v2.5 §2.9 message processing rules; DESIGN.md "HL7 v2 path").

Steps: tolerant header → archive the raw bytes in their own committed unit of work (durable
before any ACK) → duplicate (MSH-3, MSH-4, MSH-10) replays the stored ACK and writes
nothing → decode, split, accept-level checks → map → write resources and finish the archive
row in ONE unit of work → only then AA.

Acknowledgement modes (MSH-15/MSH-16, HL7 v2.5 §2.9.3): both empty → original mode, one
ACK (AA/AE/AR) after processing. Otherwise enhanced mode: the accept ACK (CA once the raw
bytes are durable; CE/CR when the message cannot be accepted) is the connection's first
frame; the application ACK (AA/AE/AR), when MSH-16 asks for it (AL; ER on error; SU on
success), follows as a second frame on the same connection. The archive keeps the first
frame (replayed to duplicates) and the processing outcome (status, error).

May import: the standard library, `ehr_store` (public API), `adapters.*`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone

from adapters.coding import feed_coding, persist_unmapped
from adapters.hl7v2.ack import AckCode, AckError, build_ack, encode_ack
from adapters.hl7v2.charset import decode_message, python_codec
from adapters.hl7v2.er7 import split_message
from adapters.hl7v2.errors import (
    APPLICATION_INTERNAL_ERROR,
    DATA_TYPE_ERROR,
    SEGMENT_SEQUENCE_ERROR,
    VALUE_TOO_LONG,
    ErrLocation,
    Hl7Error,
    Hl7Rejection,
)
from adapters.hl7v2.header import read_header
from adapters.hl7v2.mapping import Mapped, MappingContext, check_header, load_code_tables, map_message
from adapters.identity import IdentityHooks
from adapters.outcome import (
    Accepted,
    InFlight,
    IngestResult,
    MessageHook,
    ack_wanted,
    as_hl7_error,
    check_frame,
    content_digest,
    duplicate_of,
    error_text,
    message_record,
    msa_code,
)
from adapters.settings import IngestSettings
from adapters.writer import ReferenceCache, write_mapped
from ehr_store import (
    ArchivedMessage,
    ArchiveStatus,
    Conflict,
    DomainError,
    IncomingMessage,
    MessageArchive,
    MessageOutcome,
    Store,
    VersionConflict,
)
from terminology import TerminologyService, unmapped_unit

log = logging.getLogger(__name__)
CHINA_TIME = timezone(timedelta(hours=8))
_QUEUE_STATUSES = ("error", "rejected", "received")
REFUSED = "sender not authorised"
SUPERSEDED = "superseded by message"
TRUNCATED = "only its first bytes were kept"
"""In the error of a frame over the size limit: its archived bytes are a head, never processed."""
_REPLAYABLE = ("error", "rejected")


class IngestService:
    """Raw HL7 v2 in, ACK out. Thread-safe as far as the store is (one unit of work per step)."""

    def __init__(
        self,
        store: Store,
        settings: IngestSettings | None = None,
        identity_hooks: IdentityHooks | None = None,
        clock: Callable[[], datetime] | None = None,
        terminology: TerminologyService | None = None,
        before_commit: MessageHook | None = None,
    ) -> None:
        """`before_commit`: called in every unit of work that records messages' outcomes (the
        group write, or an error/rejection), right before it commits (`MessageHook`)."""
        self.store = store
        self.before_commit = before_commit
        self.terminology = terminology  # standard codes added to coded elements (adapters.coding)
        self.settings = settings or IngestSettings()
        self.hooks = identity_hooks
        self._clock = clock or (lambda: datetime.now(UTC))
        self._codes = load_code_tables(self.settings.code_tables)
        self._reference_cache = ReferenceCache()
        self._inflight = InFlight()

    # -- public API -----------------------------------------------------------------------
    def handle(self, raw: bytes, *, transport: str, peer: str | None = None) -> bytes:
        """Process one message; returns the ACK bytes (see `IngestResult.ack`). Never raises."""
        return self.ingest(raw, transport=transport, peer=peer).ack

    def ingest(self, raw: bytes, *, transport: str, peer: str | None = None) -> IngestResult:
        """`accept` then `process`; all frames for the connection. Concurrent calls for the
        same (MSH-3, MSH-4, MSH-10) run one after the other (a copy in flight is answered with
        the first copy's ACK, not processed twice). Never raises."""
        with self._inflight.hold(read_header(raw)):
            acc = self.accept(raw, transport=transport, peer=peer)
            frames = list(acc.frames)
            if not acc.done:
                frames += self.process(acc)
            return self._result(acc, frames)

    def accept(self, raw: bytes, *, transport: str, peer: str | None = None) -> Accepted:
        """Header, durable archive, duplicate check, decode and accept-level checks.

        `frames` holds what may be sent at once (the CA in enhanced mode; the final NAK or the
        replayed ACK when `done`). Never raises.
        """
        return self.accept_many([raw], transport=transport, peers=[peer])[0]

    def accept_many(
        self, raws: Sequence[bytes], *, transport: str, peers: Sequence[str | None] | None = None
    ) -> list[Accepted]:
        """`accept` for several messages with ONE archive commit (group commit). Never raises."""
        peer_list = list(peers or [None] * len(raws))
        accs = [
            Accepted(h, raw, None, python_codec(h.charset) or "utf-8", transport=transport, peer=peer)
            for h, raw, peer in (
                (read_header(raw), raw, peer) for raw, peer in zip(raws, peer_list, strict=True)
            )
        ]
        try:
            self._archive(accs, transport, peer_list)
        except Exception as exc:  # the store is unavailable: nothing durable, so no positive ACK
            log.warning("archive failed for %d message(s): %s", len(accs), type(exc).__name__)
            err = Hl7Rejection(APPLICATION_INTERNAL_ERROR, "message could not be stored; send it again later")
            for acc in accs:
                acc.message_id = None
                acc.frames, acc.done, acc.outcome = [self._nak(acc, err, enhanced_ok=False)], True, "AR"
            return accs
        for acc in accs:
            if acc.done or acc.leader is not None:
                continue
            try:
                self._decode(acc)
            except Hl7Error as exc:
                self._finish_error(acc, exc, accept_level=True)
                continue
            if acc.header.enhanced_mode and ack_wanted(acc.header.accept_ack_type or "AL", True):
                acc.frames.append(self._ack(acc, "CA"))
        for acc in accs:  # copies of a message earlier in the batch answer as it does
            if acc.leader is not None:
                acc.frames, acc.done, acc.outcome = (
                    list(acc.leader.frames),
                    acc.leader.done,
                    acc.leader.outcome,
                )
        return accs

    def process(self, acc: Accepted) -> list[bytes]:
        """Map and write an accepted message; returns the frames still to send. Never raises."""
        return self.process_many([acc])[0]

    def process_many(self, accs: Sequence[Accepted]) -> list[list[bytes]]:
        """Map accepted messages, then write them all in ONE unit of work (group commit);
        a unit that lost a write race to a concurrent writer (another MLLP process creating
        the same new resource, say) is tried again, twice; when it fails otherwise, each
        message is written in its own unit so one bad message cannot fail the others.
        Returns each message's remaining frames. Never raises."""
        out: list[list[bytes] | None] = [None] * len(accs)
        ready: list[tuple[int, Accepted, Mapped, list[AckError]]] = []
        index = {id(acc): i for i, acc in enumerate(accs)}
        copies = [
            (i, index[id(a.leader)])
            for i, a in enumerate(accs)
            if a.leader is not None and id(a.leader) in index
        ]
        for i, acc in enumerate(accs):
            if acc.leader is not None and id(acc.leader) in index:
                continue  # a copy of an earlier message of this batch (see `_archive`)
            try:
                mapped, warnings = self._map(acc)
                ready.append((i, acc, mapped, warnings))
            except Hl7Error as exc:
                out[i] = self._finish_error(acc, exc, accept_level=False)
            except Exception as exc:
                out[i] = self._finish_error(acc, as_hl7_error(exc), accept_level=False)
        if len(ready) > 1:
            done = self._write_group(ready)
            if done is not None:
                for (i, acc, _m, _w), frames in zip(ready, done, strict=True):
                    out[i], acc.outcome = frames, "AA"
                ready = []
        for i, acc, mapped, warnings in ready:
            try:
                out[i] = self._write_retrying((i, acc, mapped, warnings))
                acc.outcome = "AA"
            except Hl7Error as exc:
                out[i] = self._finish_error(acc, exc, accept_level=False)
            except Exception as exc:
                out[i] = self._finish_error(acc, as_hl7_error(exc), accept_level=False)
        for i, first in copies:
            out[i], accs[i].outcome = list(out[first] or []), accs[first].outcome
        return [frames or [] for frames in out]

    def _map(self, acc: Accepted) -> tuple[Mapped, list[AckError]]:
        assert acc.message is not None and acc.decoded is not None
        header = acc.header
        fac = self.settings.facility_settings(header.sending_facility)
        coding = feed_coding(self.terminology, header.sending_facility) if self.terminology else None
        ctx = MappingContext(
            acc.message,
            header.sending_facility or "",
            header.control_id or "",
            acc.received_at or self._clock(),
            self.settings.offset_for(header.sending_facility),
            fac.mrn_system,
            self._codes,
            coding,
        )
        warnings: list[AckError] = []
        if acc.decoded.note:
            warnings.append(AckError("0", acc.decoded.note, ErrLocation("MSH", 1, 18), "W"))
        mapped = map_message(ctx)
        mapped.coding_log = coding.log if coding is not None else None
        warnings += [AckError("0", text, loc, "W") for text, loc in mapped.warnings]
        if fac.conformance_check:
            from adapters.hl7v2.parse import conformance_problems

            warnings += [AckError("0", p, None, "W") for p in conformance_problems(acc.decoded.text)]
        return mapped, warnings

    def _write_group(
        self, ready: Sequence[tuple[int, Accepted, Mapped, list[AckError]]]
    ) -> list[list[bytes]] | None:
        """`_write` of a whole batch, tried again (twice) when it lost a write race to a
        concurrent writer (the rows it raced for exist now); None when it fails otherwise."""
        for attempt in range(3):
            try:
                return self._write(ready)
            except (Conflict, VersionConflict) as exc:
                if attempt < 2:
                    log.info("group write of %d messages lost a write race; retrying", len(ready))
                    continue
                reason = type(exc).__name__
            except Exception as exc:
                reason = type(exc).__name__
            log.info("group write of %d messages failed (%s); writing them one by one", len(ready), reason)
            return None
        return None

    def _write_retrying(self, item: tuple[int, Accepted, Mapped, list[AckError]]) -> list[bytes]:
        """`_write` of one message, tried again (twice) when a concurrent writer won a race
        (PostgreSQL with several writers, or the FHIR API writing the same resource)."""
        for attempt in range(3):
            try:
                return self._write([item])[0]
            except (Conflict, VersionConflict):
                if attempt == 2:
                    raise
                log.info("message %s lost a write race; retrying", item[1].message_id)
        raise AssertionError("unreachable")

    def _write(self, ready: Sequence[tuple[int, Accepted, Mapped, list[AckError]]]) -> list[list[bytes]]:
        """Write mapped messages and finish their archive rows in one unit of work, then commit.

        A message another writer (an MLLP process, `POST /hl7v2`) processed while this one was
        on its way - the same (MSH-3, MSH-4, MSH-10) and content, sent again on another
        connection before the first was answered - is not written again: its keys are locked
        for the unit (`MessageArchive.lock_keys`), so the second unit finds the first's
        outcome, and the copy is answered with that ACK (HL7 v2.5 §2.9.2 duplicate detection).
        Writing it again would put its content back over what later messages changed."""
        results = []
        outcomes = []
        records = []
        candidates = [self._reference_cache.candidates(mapped) for _i, _acc, mapped, _w in ready]
        committed: list[dict[tuple[str, str], int] | None] = []  # versions each left current
        # unmapped-code counts this unit carries are forgotten only once it commits
        with self.store.unit_of_work(write=True) as uow, unmapped_unit(self.terminology):
            done_elsewhere = self._processed_elsewhere(uow.messages, [acc for _i, acc, _m, _w in ready])
            wanted = {key for c in candidates for key in c}
            current = uow.resources.current_versions(wanted) if wanted else {}
            skips: list[frozenset[tuple[str, str]]] = []
            batch_writes: set[tuple[str, str]] = set()
            for (_i, _a, mapped, _w), cands in zip(ready, candidates, strict=True):
                # not skipped when an earlier message of this batch writes it (as one by one)
                skip = self._reference_cache.fresh(cands, current) - batch_writes
                skips.append(skip)
                batch_writes.update(r.key for r in mapped.resources if r.key not in skip)
            uow.resources.prefetch(  # the batch's current rows in one round-trip (locked)
                r.key
                for n, ((_i, _a, mapped, _w), skip) in enumerate(zip(ready, skips, strict=True))
                if n not in done_elsewhere
                for r in mapped.resources
                if r.key not in skip
            )
            for n, ((_i, acc, mapped, warnings), skip) in enumerate(zip(ready, skips, strict=True)):
                assert acc.message_id is not None
                first = done_elsewhere.get(n)
                if first is not None:
                    outcome, frames = self._copy_outcome(acc, first)
                    outcomes.append(outcome)
                    results.append(frames)
                    committed.append(None)
                    if self.before_commit is not None:
                        records.append(message_record(acc, "processed", outcome.ack_code, None, []))
                    continue
                stored = write_mapped(uow.resources, mapped, self.hooks, skip=skip)
                committed.append({(v.resource_type, v.id): v.version_id for v in stored})
                frames = self._success_frames(acc, warnings)
                if self.before_commit is not None:
                    written = [(v.resource_type, v.id, v.version_id == 1) for v in stored]
                    records.append(
                        message_record(acc, "processed", self._archived_code(acc, frames), None, written)
                    )
                outcomes.append(
                    MessageOutcome(
                        acc.message_id,
                        status="processed",
                        ack=self._archived_ack(acc, frames),
                        ack_code=self._archived_code(acc, frames),
                        charset=acc.codec,
                        resources=[f"{t}/{i}" for t, i in (r.key for r in mapped.resources)],
                    )
                )
                results.append(frames)
            uow.messages.finish_many(outcomes)  # the archive rows, in the same unit (one round-trip)
            if self.terminology is not None:
                logs = (m.coding_log for n, (_i, _a, m, _w) in enumerate(ready) if n not in done_elsewhere)
                persist_unmapped(self.terminology, uow.resources, logs)
            if self.before_commit is not None:
                self.before_commit(uow, records)  # e.g. one AuditEvent per message (hie_server.auth)
            uow.commit()
        for (_i, _acc, mapped, _w), versions in zip(ready, committed, strict=True):
            if versions is not None:
                self._reference_cache.remember(mapped, versions)
        return results

    @staticmethod
    def _processed_elsewhere(
        archive: MessageArchive, accs: Sequence[Accepted]
    ) -> dict[int, ArchivedMessage]:
        """Position in `accs` -> the earlier archived copy of that message (same key and
        content) another unit processed since this one was archived. Locks the keys first.
        A forced replay of a processed message (`reprocess`) is never answered this way."""
        keys = [
            (a.header.sending_application, a.header.sending_facility, a.header.control_id)
            for a in accs
            if a.header.control_id and not a.reprocess
        ]
        if not keys:
            return {}
        archive.lock_keys(keys)
        answered = archive.find_answered_many(keys)
        found: dict[int, ArchivedMessage] = {}
        for n, acc in enumerate(accs):
            h = acc.header
            if acc.reprocess:
                continue
            earlier = [
                m for m in answered.get((h.sending_application, h.sending_facility, h.control_id or ""), [])
                if m.id != acc.message_id and m.status == "processed" and m.ack
            ]
            if earlier:
                digest = content_digest(acc.raw)
                first = next((m for m in earlier if content_digest(m.raw) == digest), None)
                if first is not None:
                    found[n] = first
        return found

    def _copy_outcome(self, acc: Accepted, first: ArchivedMessage) -> tuple[MessageOutcome, list[bytes]]:
        """The archive outcome of a copy of `first` and the frames still to send for it: the
        application ACK `first` was answered with (an enhanced-mode copy had its CA already)."""
        assert acc.message_id is not None and first.ack is not None
        log.info("message %s is a copy of message %s, processed meanwhile: its ACK replayed",
                 acc.message_id, first.id)
        acc.duplicate = True
        ack = first.ack
        # the copy's CA went out when it was archived; what is left is the application ACK
        frames = [] if acc.frames and msa_code(ack).startswith("C") else [ack]
        return (
            MessageOutcome(
                acc.message_id,
                status="processed",
                ack=ack,
                ack_code=first.ack_code or msa_code(ack),
                charset=acc.codec,
                resources=list(first.resources or []),
                error=f"copy of message {first.id} (processed meanwhile): nothing written",
            ),
            frames,
        )

    def oversized_nak(self, head: bytes, size: int, limit: int) -> bytes:
        """AR (Table 0357 104, value too long) for a frame over the size limit, addressed from
        its first bytes; the head is archived as `rejected` so the error queue shows it."""
        acc = Accepted(
            read_header(head),
            head,
            None,
            python_codec(read_header(head).charset) or "utf-8",
            transport="mllp",
        )
        err = Hl7Rejection(
            VALUE_TOO_LONG,
            f"message of at least {size} bytes exceeds the {limit}-byte limit; {TRUNCATED}",
            ErrLocation("MSH", 1),
        )
        try:
            self._archive([acc], "mllp", [None])
        except Exception:  # nothing durable: the AR still tells the sender
            return self._nak(acc, err, enhanced_ok=False)
        if acc.done:  # same MSH-10 as a processed message: its ACK stands
            return acc.frames[0]
        return self._finish_error(acc, err, accept_level=True)[0]

    def internal_error_nak(self, raw: bytes) -> bytes:
        """AR 207 for a message whose processing crashed outside the service (a transport bug);
        nothing is claimed durable. Never raises."""
        header = read_header(raw)
        acc = Accepted(header, raw, None, python_codec(header.charset) or "utf-8")
        return self._nak(
            acc, Hl7Rejection(APPLICATION_INTERNAL_ERROR, "internal error; send again"), enhanced_ok=False
        )

    def reject(self, raw: bytes, reason: str, *, transport: str, peer: str | None = None) -> list[bytes]:
        """Refuse a message the transport does not let its sender write (e.g. MSH-4 is not the
        facility of the MLLP client certificate): archived as `rejected` (no duplicate replay,
        nothing mapped), answered AR (CR in enhanced mode) with ERR 207 and `reason`. 207 keeps
        the refusal from being replayed to a later, authorised send of the same message, and
        `replay_all` leaves refused messages alone (REFUSED in the error text). Never raises."""
        header = read_header(raw)
        acc = Accepted(
            header, raw, None, python_codec(header.charset) or "utf-8", transport=transport, peer=peer
        )
        err = Hl7Rejection(APPLICATION_INTERNAL_ERROR, f"{REFUSED}: {reason}", ErrLocation("MSH", 1, 4))
        h = acc.header
        keys = (h.sending_application, h.sending_facility, h.control_id, h.message_code, h.charset)
        row = IncomingMessage(raw, transport, peer, *keys)
        try:
            with self.store.unit_of_work(write=True) as uow:
                acc.message_id = uow.messages.add_many([row])[0].id
                uow.commit()
        except Exception:  # nothing durable: the AR still tells the sender
            return [self._nak(acc, err, enhanced_ok=True)]
        return self._finish_error(acc, err, accept_level=True)

    def replay(self, message_id: int, *, force: bool = False) -> IngestResult:
        """Re-run an archived message's raw bytes (after a mapping or data fix) under its
        archive row; earlier answered messages are not looked up as at arrival, but a message
        of the error queue whose copy another unit processed meanwhile gets that copy's ACK
        (`_processed_elsewhere`). Only messages in the error queue (status error/rejected) are
        replayed unless `force`: replaying a processed message would write its old data over
        later updates; forced, it is written again.

        Raises: NotFound; Conflict (not in the error queue and not `force`; or archived truncated,
        over the frame size limit: never replayed)."""
        with self.store.unit_of_work() as uow:
            archived = uow.messages.get(message_id)
        if TRUNCATED in (archived.error or ""):
            raise Conflict(
                f"message {message_id} was over the size limit and only its first bytes were archived; "
                "it cannot be replayed (the sender must resend it within the limit, or split it)"
            )
        if not force and archived.status not in _REPLAYABLE:
            raise Conflict(
                f"message {message_id} is {archived.status}, not in the error queue; not replayed "
                "(replaying it could overwrite later updates; use --force to replay it anyway)"
            )
        header = read_header(archived.raw)
        acc = Accepted(
            header,
            archived.raw,
            archived.id,
            python_codec(header.charset) or "utf-8",
            transport=archived.transport,
            peer=archived.peer,
            replay=True,
            reprocess=archived.status == "processed",
        )
        acc.received_at = archived.received_at
        try:
            self._decode(acc)
        except Hl7Error as exc:
            self._finish_error(acc, exc, accept_level=True)
            return self._result(acc, acc.frames)
        if header.enhanced_mode and ack_wanted(header.accept_ack_type or "AL", True):
            acc.frames.append(self._ack(acc, "CA"))
        frames = acc.frames + self.process(acc)
        return self._result(acc, frames)

    def replay_all(
        self, statuses: Sequence[str] = _QUEUE_STATUSES, limit: int = 10_000
    ) -> list[IngestResult]:
        """Replay every message in the error queue (oldest first)."""
        with self.store.unit_of_work() as uow:
            queued = uow.messages.list(status=list(statuses), limit=limit)  # type: ignore[arg-type]
        queued = self._drop_superseded(queued)
        # a sender's refusal stands; a truncated head is not the message
        queued = [m for m in queued if REFUSED not in (m.error or "") and TRUNCATED not in (m.error or "")]
        return [self.replay(m.id, force=True) for m in sorted(queued, key=lambda m: m.id)]

    def error_queue(self, limit: int = 100, offset: int = 0) -> list[ArchivedMessage]:
        """Failed, rejected and unfinished messages, newest first; a failed message whose
        resend (same MSH-3, MSH-4, MSH-10) was processed later is superseded and left out, and
        so is an unfinished copy of a message processed earlier (a copy a crashed MLLP process
        held while another process answered the first one)."""
        with self.store.unit_of_work() as uow:
            queued = uow.messages.list(status=list(_QUEUE_STATUSES), limit=limit, offset=offset)  # type: ignore[arg-type]
        return self._drop_superseded(queued)

    def _drop_superseded(self, queued: Sequence[ArchivedMessage]) -> list[ArchivedMessage]:
        """Queue entries not superseded; newly superseded ones are marked in the archive (error
        text "superseded by message N: ..."; the row keeps its status, raw bytes and ACK)."""
        keys = [(m.sending_application, m.sending_facility, m.control_id) for m in queued if m.control_id]
        if not keys:
            return [m for m in queued if not (m.error or "").startswith(SUPERSEDED)]
        try:
            with self.store.unit_of_work(write=True) as uow:
                later = uow.messages.find_processed_many(keys)
                kept = []
                for m in queued:
                    if (m.error or "").startswith(SUPERSEDED):
                        continue
                    found = later.get((m.sending_application, m.sending_facility, m.control_id or ""))
                    earlier_copy = (
                        found is not None
                        and m.status == "received"
                        and found.id < m.id
                        and content_digest(found.raw) == content_digest(m.raw)
                    )
                    if earlier_copy:
                        continue
                    if found is None or found.status != "processed" or found.id < m.id or not m.control_id:
                        kept.append(m)
                    elif m.ack is not None and m.ack_code:
                        uow.messages.finish(
                            m.id,
                            status=m.status,
                            ack=m.ack,
                            ack_code=m.ack_code,
                            error=f"{SUPERSEDED} {found.id}: {m.error or ''}",
                            charset=m.charset,
                        )
                uow.commit()
        except DomainError as exc:  # the queue is still shown; marking is retried next time
            log.warning("could not mark superseded messages: %s", type(exc).__name__)
            return list(queued)
        return kept

    # -- steps ----------------------------------------------------------------------------
    def _archive(self, accs: Sequence[Accepted], transport: str, peers: Sequence[str | None]) -> None:
        # write=True: the duplicate check reads before the unit writes (SQLite takes its write
        # lock up front instead of failing to upgrade a read transaction under concurrent writers).
        # Durable before any ACK: in original mode the first ACK follows the durable commit of
        # the message's outcome (its resources, or its error), which makes this one durable with
        # it; an enhanced-mode CA is sent right after this commit, so that one must be durable.
        durable = any(a.header.enhanced_mode for a in accs)
        with self.store.unit_of_work(write=True, durable=durable) as uow:
            keys = [
                (a.header.sending_application, a.header.sending_facility, a.header.control_id)
                for a in accs
                if a.header.control_id
            ]
            earlier = uow.messages.find_answered_many(keys) if keys else {}
            new: list[tuple[Accepted, IncomingMessage]] = []
            firsts: dict[tuple[str | None, str | None, str, bytes], Accepted] = {}
            for acc, peer in zip(accs, peers, strict=True):
                h = acc.header
                if h.control_id:  # the same message twice in one batch (sent on two connections)
                    copy_key = (
                        h.sending_application,
                        h.sending_facility,
                        h.control_id,
                        content_digest(acc.raw),
                    )
                    if copy_key in firsts:
                        acc.leader, acc.duplicate = firsts[copy_key], True
                        continue
                    firsts[copy_key] = acc
                answered = earlier.get((h.sending_application, h.sending_facility, h.control_id or ""), [])
                found = duplicate_of(answered, acc.raw) if h.control_id else None
                if found is not None and found.ack:
                    acc.frames, acc.done, acc.duplicate = self._replayed(acc, found.ack), True, True
                    acc.message_id, acc.outcome = found.id, found.ack_code or ""
                    continue
                new.append(
                    (
                        acc,
                        IncomingMessage(
                            acc.raw,
                            transport,
                            peer,
                            h.sending_application,
                            h.sending_facility,
                            h.control_id,
                            h.message_code,
                            h.charset,
                        ),
                    )
                )
            rows = uow.messages.add_many([m for _a, m in new])  # one round-trip for the batch
            for (acc, _m), row in zip(new, rows, strict=True):
                acc.message_id, acc.received_at = row.id, row.received_at
            uow.commit()
        for acc in accs:
            if acc.leader is not None:
                acc.message_id, acc.received_at = acc.leader.message_id, acc.leader.received_at

    def _decode(self, acc: Accepted) -> None:
        h = acc.header
        if not h.found:
            raise Hl7Rejection(
                SEGMENT_SEQUENCE_ERROR, "not an HL7 v2 message: no MSH segment", ErrLocation("MSH", 1)
            )
        if not h.delimiters_ok:
            raise Hl7Rejection(
                DATA_TYPE_ERROR,
                "MSH-1/MSH-2: the field separator and the 4 or 5 encoding characters must be distinct "
                "and not letters, digits or spaces (usually bar, caret, tilde, backslash, ampersand)",
                ErrLocation("MSH", 1, 2),
            )
        acc.decoded = decode_message(acc.raw, h.charset, self.settings.charset_for(h.sending_facility))
        acc.codec = acc.decoded.codec
        acc.message = split_message(acc.decoded.text)
        check_frame(h, acc.message)
        msh = acc.message.msh
        check_header(msh.get(9, 1), msh.get(9, 2), msh.get(12, 1), msh.get(11, 1))

    def _success_frames(self, acc: Accepted, warnings: list[AckError]) -> list[bytes]:
        h = acc.header
        if not h.enhanced_mode:
            return [self._ack(acc, "AA", warnings)]
        if ack_wanted(h.application_ack_type or "AL", True):
            return [self._ack(acc, "AA", warnings)]
        # nothing asked for (e.g. MSH-15 NE or ER): an MLLP sender still waits for an answer,
        # so the message gets an original-mode ACK rather than an accept ACK it did not ask for
        return [] if acc.frames else [self._ack(acc, "AA", warnings)]

    def _finish_error(self, acc: Accepted, exc: Hl7Error, *, accept_level: bool) -> list[bytes]:
        h = acc.header
        nak = self._nak(acc, exc, enhanced_ok=accept_level)
        if accept_level or not h.enhanced_mode or ack_wanted(h.application_ack_type or "AL", False):
            frames = [nak]
        else:
            frames = [] if acc.frames else [self._nak(acc, exc, enhanced_ok=False)]
        acc.outcome = exc.ack_code
        status: ArchiveStatus = "rejected" if exc.ack_code == "AR" else "error"
        first = (acc.frames + frames)[0]
        log.info(  # the code the sender actually got (CE/CR in enhanced mode)
            "message %s from %s: %s %s",
            acc.message_id,
            h.sending_facility or "(no MSH-4)",
            msa_code(first),
            exc.code,
        )
        last = self._archived_ack(acc, frames)
        try:
            with self.store.unit_of_work() as uow:
                assert acc.message_id is not None
                uow.messages.finish(
                    acc.message_id,
                    status=status,
                    ack=last,
                    ack_code=msa_code(last),
                    error=error_text(exc),
                    charset=acc.codec,
                )
                if self.before_commit is not None:  # the refusal is audited with its outcome
                    self.before_commit(uow, [message_record(acc, status, msa_code(last), error_text(exc))])
                uow.commit()
        except Exception as store_exc:  # the row stays `received`: still in the error queue
            log.warning(
                "could not record outcome of message %s: %s", acc.message_id, type(store_exc).__name__
            )
        if accept_level:
            acc.frames, acc.done = frames, True
        return frames

    # -- ACK helpers ----------------------------------------------------------------------
    def _ack(self, acc: Accepted, code: AckCode, errors: Sequence[AckError] = ()) -> bytes:
        control = f"A{acc.message_id}" if acc.message_id is not None else "A" + uuid.uuid4().hex[:15]
        text = build_ack(
            acc.header,
            code,
            control_id=control,
            now=self._clock().astimezone(CHINA_TIME),
            errors=errors,
            application=self.settings.application,
            facility=self.settings.facility,
        )
        return encode_ack(text, acc.codec)

    def _nak(self, acc: Accepted, exc: Hl7Error, *, enhanced_ok: bool) -> bytes:
        code: AckCode = "AR" if exc.ack_code == "AR" else "AE"
        if enhanced_ok and acc.header.enhanced_mode:
            code = "CR" if code == "AR" else "CE"
        return self._ack(acc, code, [AckError.from_exception(exc)])

    def _archived_ack(self, acc: Accepted, frames: list[bytes]) -> bytes:
        """The ACK archived for a resend: the last one sent (in enhanced mode the application
        ACK after the CA, when there is one; `_replayed` sends a CA before it again)."""
        return (acc.frames + frames)[-1]

    def _replayed(self, acc: Accepted, ack: bytes) -> list[bytes]:
        """What a resend of an answered message gets (HL7 v2.5 §2.9.2): `ack`, the ACK archived
        for the first copy, preceded in enhanced mode by a CA when the resend asks for accept
        ACKs and `ack` is an application ACK (the sender waits for both, as the first time)."""
        h = acc.header
        if h.enhanced_mode and msa_code(ack).startswith("A") and ack_wanted(h.accept_ack_type or "AL", True):
            return [self._ack(acc, "CA"), ack]
        return [ack]

    def _archived_code(self, acc: Accepted, frames: list[bytes]) -> str:
        return msa_code(self._archived_ack(acc, frames))

    def _result(self, acc: Accepted, frames: list[bytes]) -> IngestResult:
        if not frames:  # never leave a sender without an answer
            frames = [self._ack(acc, "CA")]
        return IngestResult(
            acc.message_id, tuple(frames), msa_code(frames[0]), acc.outcome, acc.duplicate, acc.codec
        )
