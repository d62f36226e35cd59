"""`SurveillanceService`: the one entry point of the REST operations and the CLI.

Each call runs in its own read unit of work over the store; the notifiable catalogue comes from
the terminology service (rebuilt when the terminology resources change).

May import: the standard library, `ehr_store`, `terminology`, `hie_server.surveillance.*`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

from ehr_store import Store
from hie_server.surveillance.cases import CaseRecord, collect_cases
from hie_server.surveillance.diseases import DiseaseCatalogue
from hie_server.surveillance.extract import Deidentifier, case_row, to_csv, to_ndjson
from hie_server.surveillance.settings import SurveillanceSettings
from hie_server.surveillance.stats import epidemic_curve, ili_share, vaccination_coverage, weekly_counts
from terminology import TerminologyService

Format = Literal["csv", "ndjson"]


class SurveillanceService:
    """Notifiable cases, extracts and aggregates over one store."""

    def __init__(self, store: Store, terminology: TerminologyService, settings: SurveillanceSettings) -> None:
        self.store = store
        self.terminology = terminology
        self.settings = settings
        self._catalogue: tuple[object, DiseaseCatalogue] | None = None

    def catalogue(self) -> DiseaseCatalogue:
        """The notifiable catalogue of the current terminology index. Raises: Unavailable."""
        index = self.terminology.index()
        if self._catalogue is None or self._catalogue[0] is not index:
            self._catalogue = (index, DiseaseCatalogue.from_index(index, self.settings))
        return self._catalogue[1]

    def cases(
        self, start: date, end: date, *, county: str | None = None, disease: str | None = None
    ) -> list[CaseRecord]:
        """Cases diagnosed in [start, end] (see `cases.collect_cases`)."""
        catalogue = self.catalogue()
        with self.store.unit_of_work() as uow:
            return collect_cases(uow, catalogue, start, end, county=county, disease=disease)

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
        with self.store.unit_of_work() as uow:
            return ili_share(uow, catalogue, start, end, county)

    def coverage(self, county: str | None = None, until: datetime | None = None) -> list[dict[str, Any]]:
        """Vaccination coverage per county and vaccine."""
        return vaccination_coverage(self.store, until or datetime.now(UTC), county)
