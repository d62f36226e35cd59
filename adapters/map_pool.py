"""Mapping and validating HL7 v2 messages in worker processes, ahead of the writer.

`map_accepted` is the mapping step of `IngestService` (split message → `Mapped` and ACK
warnings), a pure function of the message, the ingest settings and the terminology
translator. `MapPool` runs it in `IngestSettings.map_processes` worker processes: each
worker re-splits the decoded text, maps it with its own `TerminologyService` over its own
read-only connection to the same database, and validates every mapped resource whose content
as mapped against its FHIR R4B model.
The parent gets the `Mapped` back with `MappedResource.validated` set on those, and the store
skips the model validation of each one written exactly as mapped
(`ResourceRepository.update(prevalidated=True)`); one merged with its stored version (a
known source Patient or Encounter) is a new document and is validated in the writer.

Why: the writer (one unit of work at a time on SQLite) spent ~0.3 ms per message mapping and
~0.45 ms validating mapped resources on the one core that runs Python; a worker does that on
the other core while the writer writes the previous batch (`MllpSettings.writers` 2).
A worker that fails (crash, pickling, any exception while mapping) yields None for that
message and the parent maps it itself, so errors and their ACKs are those of in-process
mapping. Only SQL stores (a memory store cannot be shared with another process).

May import: the standard library, `ehr_store` (public API), `terminology` (public API),
`adapters.*`.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapters.coding import feed_coding
from adapters.hl7v2.ack import AckError
from adapters.hl7v2.er7 import Message, split_message
from adapters.hl7v2.errors import ErrLocation
from adapters.hl7v2.header import Header
from adapters.hl7v2.mapping import CodeTables, Mapped, MappingContext, load_code_tables, map_message
from adapters.settings import IngestSettings
from ehr_store import DomainError, StoreSettings, open_store, validate_resource
from terminology import MemoryUnmappedLog, TerminologyService, TerminologySettings

__all__ = ["MapJob", "MapPool", "map_accepted"]

log = logging.getLogger(__name__)


def map_accepted(
    settings: IngestSettings,
    codes: CodeTables,
    terminology: TerminologyService | None,
    message: Message,
    header: Header,
    received_at: datetime,
    decoded_note: str | None,
    decoded_text: str,
) -> tuple[Mapped, list[AckError]]:
    """Map one accepted message (HL7 v2-to-FHIR IG maps, `adapters.hl7v2.mapping`).

    Returns the mapped resources (with the message's unmapped-code log as `coding_log` when
    `terminology` is given) and the ACK warnings (charset note, mapping warnings, and for a
    sender with `conformance_check` hl7apy's findings). Raises: Hl7Error (content errors,
    HL7 v2.5 §2.9 AE/AR), anything the mapping raises on a programming error.
    """
    fac = settings.facility_settings(header.sending_facility)
    coding = feed_coding(terminology, header.sending_facility) if terminology else None
    ctx = MappingContext(
        message,
        header.sending_facility or "",
        header.control_id or "",
        received_at,
        settings.offset_for(header.sending_facility),
        fac.mrn_system,
        codes,
        coding,
    )
    warnings: list[AckError] = []
    if decoded_note:
        warnings.append(AckError("0", decoded_note, ErrLocation("MSH", 1, 18), "W"))
    mapped = map_message(ctx)
    mapped.coding_log = coding.log if coding is not None else None
    warnings += [AckError("0", text, loc, "W") for text, loc in mapped.warnings]
    if fac.conformance_check:
        from adapters.hl7v2.parse import conformance_problems

        warnings += [AckError("0", p, None, "W") for p in conformance_problems(decoded_text)]
    return mapped, warnings


@dataclass(frozen=True, slots=True)
class MapJob:
    """What a worker needs to map one accepted message (all picklable)."""

    text: str
    header: Header
    received_at: datetime
    note: str | None


# -- worker side ------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(
    store_settings: StoreSettings, settings: IngestSettings, terminology: TerminologySettings | None
) -> None:
    _WORKER["settings"] = settings
    _WORKER["codes"] = load_code_tables(settings.code_tables)
    if terminology is not None:  # reads only: no checkpoints or ANALYZE, few connections
        reader = store_settings.model_copy(update={"maintenance": False, "pool_size": 1, "max_overflow": 1})
        _WORKER["terminology"] = TerminologyService(open_store(reader), terminology)
    else:
        _WORKER["terminology"] = None


def _map_batch(jobs: list[MapJob]) -> list[tuple[Mapped, list[AckError]] | None]:
    return [_map_one(job) for job in jobs]


def _map_one(job: MapJob) -> tuple[Mapped, list[AckError]] | None:
    try:
        mapped, warnings = map_accepted(
            _WORKER["settings"],
            _WORKER["codes"],
            _WORKER["terminology"],
            split_message(job.text),
            job.header,
            job.received_at,
            job.note,
            job.text,
        )
    except Exception:  # the parent maps it again and answers exactly as in-process mapping would
        return None
    if mapped.coding_log is not None:  # a lock inside: send the counts as plain records
        mapped.coding_log = mapped.coding_log.list()
    for i, item in enumerate(mapped.resources):
        # a merged resource (source Patient, Encounter) whose stored version adds anything is
        # a new dict in the writer (`adapters.writer`), validated there
        try:
            validate_resource(item.resource)
        except DomainError:
            continue  # the writer validates it again and reports the precise error
        mapped.resources[i] = dataclasses.replace(item, validated=True)
    return mapped, warnings


# -- parent side ------------------------------------------------------------------------------
class MapPool:
    """`processes` mapping workers (spawned, so the parent's threads are not forked)."""

    def __init__(
        self,
        processes: int,
        store_settings: StoreSettings,
        settings: IngestSettings,
        terminology: TerminologySettings | None,
    ) -> None:
        self._executor: ProcessPoolExecutor | None = ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(store_settings, settings, terminology),
        )

    def map_batch(self, jobs: list[MapJob]) -> list[tuple[Mapped, list[AckError]] | None]:
        """Each job's (mapped, warnings), or None where the parent must map it itself (the
        worker failed on it, or the pool is broken or closed). Never raises."""
        if self._executor is None or not jobs:
            return [None] * len(jobs)
        try:
            results = self._executor.submit(_map_batch, jobs).result()
        except BrokenProcessPool:
            log.warning("a mapping worker died; mapping in the writer from now on")
            self.close()
            return [None] * len(jobs)
        except Exception as exc:
            log.warning("mapping workers failed on a batch (%s); mapping it here", type(exc).__name__)
            return [None] * len(jobs)
        for result in results:
            if result is not None and isinstance(result[0].coding_log, list):
                restored = MemoryUnmappedLog()
                for c in result[0].coding_log:
                    restored.record(c.sender, c.system, c.code, c.display, count=c.count, at=c.first_seen)
                    restored.record(c.sender, c.system, c.code, None, count=0, at=c.last_seen)
                result[0].coding_log = restored
        return results

    @property
    def active(self) -> bool:
        """False once closed or broken (every message is then mapped in the writer)."""
        return self._executor is not None

    def close(self) -> None:
        """Stop the workers (idempotent)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
