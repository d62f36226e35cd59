"""`SurveillanceService`: the one entry point of the REST operations and the CLI.

Each call runs in its own read unit of work over the store; the notifiable catalogue comes from
the terminology service (rebuilt when the terminology resources change). On a SQL store the
dashboard reads a read model kept beside the store (`facts`: one small row per Encounter,
Condition and report Task, each Patient's county), brought up to date from the store's changes before each
computation: cases read only the Conditions of the period whose ICD-10 code is notifiable, the
ILI share is counted per hour and county in SQL; other stores page through searches. Results are
kept for `CACHE_SECONDS` under a key that includes the newest `lastUpdated` of every resource type
they read (`IndexAggregates.last_changed`), so any write or deletion of those types recomputes
them (the dashboard asks for the same cases twice: counts and overdue), and so does any change
the read-model refresh finds (a write committed after a later-stamped one). Only such a late
write to a type outside the read model (a Patient's name, an Observation) can be seen up to
`CACHE_SECONDS` late. `prepare()` builds or catches up the read model and the catalogue up front
(`ReadModelWarmup` runs it when `hie serve` starts; `hie surveillance refresh` from the shell).

May import: the standard library, `ehr_store`, `terminology`, `hie_server.surveillance.*`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, TypeVar

from ehr_store import IndexAggregates, NotSupported, Store
from hie_server.surveillance import facts
from hie_server.surveillance.cases import CaseRecord, collect_cases
from hie_server.surveillance.diseases import DiseaseCatalogue
from hie_server.surveillance.extract import Deidentifier, case_row, to_csv, to_ndjson
from hie_server.surveillance.settings import SurveillanceSettings
from hie_server.surveillance.stats import (
    epidemic_curve,
    ili_share,
    vaccination_coverage,
    weekly_counts,
)
from terminology import TerminologyService

log = logging.getLogger(__name__)
Format = Literal["csv", "ndjson"]
T = TypeVar("T")
CACHE_SECONDS = 60.0
DEFAULT_WEEKS = 12
"""The workbench dashboard's default period (`hie_server.web.pages_cdc.period`)."""
CASE_TYPES = ("Condition", "Observation", "Task", "Patient", "Organization")
ILI_TYPES = ("Encounter", "Condition", "Patient")


class SurveillanceService:
    """Notifiable cases, extracts and aggregates over one store."""

    def __init__(self, store: Store, terminology: TerminologyService, settings: SurveillanceSettings) -> None:
        self.store = store
        self.terminology = terminology
        self.settings = settings
        self._catalogue: tuple[object, DiseaseCatalogue] | None = None
        self._memo: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._generation = 0  # read-model refreshes that changed something (part of the cache key)
        self._guard = threading.Lock()
        self._building = threading.Lock()
        self._flights: dict[tuple[Any, ...], threading.Lock] = {}
        try:
            self.aggregates: IndexAggregates | None = IndexAggregates(store)
        except NotSupported:
            self.aggregates = None

    def catalogue(self) -> DiseaseCatalogue:
        """The notifiable catalogue of the current terminology index. Raises: Unavailable."""
        index = self.terminology.index()
        with self._building:  # built once (~0.6 s), not by each of the first concurrent requests
            if self._catalogue is None or self._catalogue[0] is not index:
                self._catalogue = (index, DiseaseCatalogue.from_index(index, self.settings))
            return self._catalogue[1]

    def cases(
        self, start: date, end: date, *, county: str | None = None, disease: str | None = None
    ) -> list[CaseRecord]:
        """Cases diagnosed in [start, end] (see `cases.collect_cases`)."""
        catalogue = self.catalogue()

        def compute() -> list[CaseRecord]:
            aggregates, ids, reports = self.aggregates, None, None
            if aggregates is not None:
                ids = facts.notifiable_condition_ids(aggregates, catalogue, start, end)
                reports = lambda sources: facts.report_task_ids(aggregates, sources)  # noqa: E731
            with self.store.unit_of_work() as uow:
                return collect_cases(
                    uow,
                    catalogue,
                    start,
                    end,
                    county=county,
                    disease=disease,
                    condition_ids=ids,
                    report_ids=reports,
                )

        key = ("cases", id(catalogue), start, end, county, disease)
        return list(self._cached(key, CASE_TYPES, compute, visits=False))

    def prepare(self, *, full: bool = False) -> int:
        """Build or catch up the read model (the first build reads every Encounter, Condition,
        Task and Patient once; `full`: re-check them all by version) and the catalogue, so the
        first dashboard view does not; no-op without index aggregates. Returns the read-model rows
        re-derived. Raises: Unavailable."""
        self.catalogue()
        if self.aggregates is None:
            return 0
        done = facts.refresh(self.aggregates, full=full)
        if done:
            self._generation += 1  # cached results made before it are not used again
        return done

    def _cached(
        self, key: tuple[Any, ...], types: tuple[str, ...], compute: Callable[[], T], *, visits: bool = True
    ) -> T:
        """`compute()`, or its result kept under `key`, the types' last change and the read
        model's generation (module doc). The read model is refreshed first (`facts.refresh`; a
        few ms when nothing changed), so a write it finds that is stamped before the newest one
        still recomputes."""
        if self.aggregates is None:
            return compute()
        if facts.refresh(self.aggregates, visits=visits):
            self._generation += 1
        full = (*key, self._generation, self.aggregates.last_changed(types))
        with self._guard:
            if len(self._flights) > 1000:  # many distinct periods: start again (a held lock
                self._flights.clear()  # stays valid for its holder)
            flight = self._flights.setdefault(key, threading.Lock())
        with flight:  # one computation per key at a time: the dashboard's counts and overdue
            now = time.monotonic()  # ask for the same cases at once, the second waits for it
            hit = self._memo.get(full)
            if hit is not None and now - hit[0] < CACHE_SECONDS:
                return hit[1]  # type: ignore[no-any-return]
            value = compute()
            self._memo = {k: v for k, v in self._memo.items() if now - v[0] < CACHE_SECONDS}
            self._memo[full] = (now, value)
            return value

    def extract(
        self,
        cases: list[CaseRecord],
        fmt: Format,
        *,
        identified: bool,
        shift_dates: bool = False,
        now: datetime | None = None,
    ) -> bytes:
        """CSV (BOM, Chinese headers) or NDJSON of `cases`, identified or de-identified."""
        deid = None if identified else Deidentifier(self.settings, shift_dates=shift_dates)
        moment = now or datetime.now(UTC)
        rows = [case_row(c, moment, deid) for c in cases]
        return to_csv(rows, identified=identified) if fmt == "csv" else to_ndjson(rows)

    @staticmethod
    def overdue(cases: list[CaseRecord], now: datetime | None = None) -> list[CaseRecord]:
        """Cases not reported by their deadline (as of `now`)."""
        moment = now or datetime.now(UTC)
        return [c for c in cases if c.overdue(moment)]

    @staticmethod
    def counts(cases: list[CaseRecord]) -> list[dict[str, Any]]:
        """Counts by ISO week × county × disease."""
        return weekly_counts(cases)

    @staticmethod
    def curve(cases: list[CaseRecord], fmt: str = "png", title: str = "Epidemic curve") -> bytes:
        """Epidemic curve image (PNG or SVG)."""
        return epidemic_curve(cases, fmt=fmt, title=title)

    def ili(self, start: date, end: date, county: str | None = None) -> list[dict[str, Any]]:
        """ILI share of outpatient visits per week and county."""
        catalogue = self.catalogue()
        if self.aggregates is not None:
            aggregates = self.aggregates

            def compute() -> list[dict[str, Any]]:
                return facts.ili_share(aggregates, catalogue, start, end, county)

            return self._cached(("ili", id(catalogue), start, end, county), ILI_TYPES, compute)
        with self.store.unit_of_work() as uow:
            return ili_share(uow, catalogue, start, end, county)

    def coverage(self, county: str | None = None, until: datetime | None = None) -> list[dict[str, Any]]:
        """Vaccination coverage per county and vaccine."""
        return vaccination_coverage(self.store, until or datetime.now(UTC), county)


class ReadModelWarmup:
    """A `hie serve` background service: `SurveillanceService.prepare()` in a thread of its own
    at start (the server answers meanwhile; a dashboard view during a first-ever build waits for
    it), so neither the first view after a restart nor one after a schema upgrade builds it;
    then computes the dashboard's default period once (cases and ILI share kept until a write)."""

    name = "surveillance-read-model"

    def __init__(self, service: SurveillanceService) -> None:
        self.service = service
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            rows = self.service.prepare()
            # the dashboard's default period (the last 12 weeks, city-wide), kept until a write
            end = date.today()
            start = end - timedelta(weeks=DEFAULT_WEEKS)
            self.service.curve(self.service.cases(start, end), fmt="svg")  # and matplotlib loaded
            self.service.ili(start, end)
        except Exception:  # a warm-up failure must not stop the server; the next view retries
            log.exception("surveillance read model: refresh at start failed")
            return
        log.info(
            "surveillance read model ready: %d rows re-derived in %.1f s", rows, time.perf_counter() - started
        )

    async def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)
