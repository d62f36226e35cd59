"""Startup steps shared by `hie db upgrade`, `hie serve` (and so `hie demo`): the shipped
terminology content is loaded when the store lacks it, so ingestion can translate local
codes from the first message on (docs/terminology.md "Loading"); `UnmappedCountFlusher`
writes held unmapped-code counts on time while `hie serve` runs.

May import: the standard library, `ehr_store`, `terminology` (public APIs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from ehr_store import Gone, NotFound, Store
from terminology import LoadReport, TerminologyService, shipped_senders

log = logging.getLogger(__name__)

MARKERS = (("CodeSystem", "icd-10"), ("CodeSystem", "loinc"), ("ValueSet", "icd-10"))
"""Resources whose presence says the shipped content was loaded (with every shipped sender's
`ConceptMap/local-<SENDER>`)."""


def terminology_missing(store: Store) -> list[str]:
    """References of shipped terminology resources the store does not hold (empty when loaded).
    Cost: one read per marker (a few milliseconds)."""
    wanted = [*MARKERS, *(("ConceptMap", f"local-{s}") for s in shipped_senders())]
    missing: list[str] = []
    with store.unit_of_work() as uow:
        for rtype, rid in wanted:
            try:
                uow.resources.read(rtype, rid)
            except (NotFound, Gone):
                missing.append(f"{rtype}/{rid}")
    return missing


def ensure_terminology(store: Store, service: TerminologyService | None = None) -> LoadReport | None:
    """Load the shipped terminology content (ICD-10, LOINC subset, GB/T value sets, sender
    ConceptMaps) when any of it is missing; None when it was all there already (the usual
    restart: a few reads). Idempotent: `TerminologyService.load_content` writes by id, keeps
    unchanged resources at their version and never overwrites a sender map already stored.
    Raises: the store's domain errors (nothing is written then).
    """
    missing = terminology_missing(store)
    if not missing:
        return None
    started = time.perf_counter()
    report = (service or TerminologyService(store)).load_content()
    log.info(
        "terminology content loaded (%d missing): %d created, %d updated, %d unchanged in %.1f s",
        len(missing),
        len(report.created),
        len(report.updated),
        len(report.unchanged),
        time.perf_counter() - started,
    )
    return report


class UnmappedCountFlusher:
    """A `hie serve` background service: writes the unmapped-code counts the terminology
    service holds in memory every `unmapped_flush_seconds`, and once more at stop, so the
    counts never lag longer than that window when messages stop arriving (ingestion otherwise
    writes them only with a later batch; `terminology.unmapped.ThrottledPersister`)."""

    name = "unmapped-code-counts"

    def __init__(self, terminology: TerminologyService) -> None:
        self.terminology = terminology
        self.interval = max(1.0, terminology.settings.unmapped_flush_seconds)
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self._flush()

    async def _flush(self) -> None:
        try:
            await asyncio.to_thread(self.terminology.flush_unmapped)
        except Exception as exc:  # the store is busy or down: the next round writes them
            log.warning("unmapped-code counts not written: %s", type(exc).__name__)

    async def start(self) -> None:
        """Start the periodic flush."""
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop it and write what is still held."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._flush()
