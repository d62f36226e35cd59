"""Aggregates for reports that must not page every matching resource through Python (the
disease-control dashboard at a million resources), over read models kept beside the store.

- `IndexAggregates.last_changed`: the newest `lastUpdated` per type (a cache key for reports).
- Read models (`ehr_store.read_model`): `refresh_projection` (one derived value per resource, e.g.
  a Patient's home county) and `refresh_facts` (one small row per resource, e.g. every Encounter
  with its date range, subject and class), refreshed incrementally from the store's changes on
  demand (never in the write path).
- `fact_codes`, `fact_ids`, `fact_hourly`: the facts of a period (the search's date semantics on
  the range copied from the search index) grouped in SQL, e.g. the codes the Conditions of 12 weeks
  use, the ids of those with a notifiable code, outpatient visits per hour and home county with
  those an influenza-like-illness Condition links to. Neither the search index nor the stored JSON
  is read.

SQL stores only: `IndexAggregates(store)` raises NotSupported for others (callers fall back to
paging through searches).

May import: sqlalchemy, the standard library, `ehr_store` modules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ehr_store import read_model
from ehr_store.errors import NotSupported
from ehr_store.read_model import Fact
from ehr_store.read_model import fact_table as F
from ehr_store.read_model import projection_table as P
from ehr_store.repository import Store
from ehr_store.search import parse_date_range
from ehr_store.sql import SqlStore
from ehr_store.tables import resource_table as R

__all__ = ["Fact", "HourlyCount", "IndexAggregates"]

Json = dict[str, Any]
LOWEST = datetime(1, 1, 3, tzinfo=UTC)
"""Starts at or below this are the index's open lower bound (a range without a start)."""


@dataclass(frozen=True, slots=True)
class HourlyCount:
    """`total` facts whose date range starts in the UTC hour `hour` and whose subject projects to
    `group` (None: no such resource or no value); `flagged` of them are linked by a flag fact."""

    hour: datetime
    group: str | None
    total: int
    flagged: int


class IndexAggregates:
    """Aggregate queries and read-model refreshes over one SQL store (see module docstring)."""

    def __init__(self, store: Store) -> None:
        """Raises: NotSupported (not a SQL store)."""
        if not isinstance(store, SqlStore):
            raise NotSupported("index aggregates need a SQL store")
        self.store = store

    def last_changed(self, resource_types: tuple[str, ...]) -> tuple[datetime | None, ...]:
        """The newest `meta.lastUpdated` of each type (writes and deletions alike; None: no
        resource), from the `(resource_type, last_updated)` index: a cheap key for caching a
        report over those types. Raises: Unavailable."""
        with self.store.unit_of_work() as uow:
            conn = uow.flushed_connection()
            stmt = sa.select(sa.func.max(R.c.last_updated)).where(R.c.resource_type == sa.bindparam("rt"))
            found = [conn.execute(stmt, {"rt": t}).scalar_one_or_none() for t in resource_types]
        return tuple(v if v is None or v.tzinfo else v.replace(tzinfo=UTC) for v in found)

    def refresh_projection(
        self, name: str, resource_type: str, derive: Callable[[Json], str | None], *, full: bool = False
    ) -> int:
        """See `ehr_store.read_model.refresh_projection`. Raises: Unavailable, Conflict."""
        return read_model.refresh_projection(self.store, name, resource_type, derive, full=full)

    def refresh_facts(
        self,
        name: str,
        resource_type: str,
        date_param: str | None,
        derive: Callable[[Json], Fact | None],
        *,
        full: bool = False,
    ) -> int:
        """See `ehr_store.read_model.refresh_facts`. Raises: Unavailable, Conflict."""
        return read_model.refresh_facts(self.store, name, resource_type, date_param, derive, full=full)

    def _period(self, start: date, end: date, facts: Any = F) -> list[Any]:
        """Facts whose range matches `ge{start}` and `le{end}` (one zone day each, in the store's
        zone), with the search's date semantics (FHIR R4B search §3.1.1.5.4, `ehr_store.search`:
        ge: re >= ps and (re > pe or rs >= ps); le: rs <= pe and (rs < ps or re <= pe))."""
        tz = ZoneInfo(self.store.settings.default_timezone)
        (ps, pe), (qs, qe) = parse_date_range(start.isoformat(), tz), parse_date_range(end.isoformat(), tz)
        rs, re = facts.c.start, facts.c.end
        return [re >= ps, sa.or_(re > pe, rs >= ps), rs <= qe, sa.or_(rs < qs, re <= qe)]

    def fact_codes(self, name: str, start: date, end: date) -> list[tuple[str | None, str | None, int]]:
        """[(code, codes as stored, facts)] of fact `name` in the period (see `_period`): which
        codes occur, so the caller picks the ones it reports (`Fact.split` reads `codes`).
        Raises: Unavailable."""
        with self.store.unit_of_work() as uow:
            conn = uow.connection(write=False)
            stmt = (
                sa.select(F.c.code, F.c.codes, sa.func.count())
                .where(F.c.name == name, *self._period(start, end))
                .group_by(F.c.code, F.c.codes)
            )
            return [(r[0], r[1], int(r[2])) for r in conn.execute(stmt)]

    def fact_ids(self, name: str, start: date, end: date, codes: Sequence[str]) -> list[str]:
        """Resource ids of the facts `name` in the period whose `code` is one of `codes`, in the
        database's id order (the search's). Raises: Unavailable."""
        if not codes:
            return []
        with self.store.unit_of_work() as uow:
            conn = uow.connection(write=False)
            stmt = (
                sa.select(F.c.resource_id)
                .where(F.c.name == name, F.c.code.in_(list(codes)), *self._period(start, end))
                .order_by(F.c.resource_id)
            )
            return [str(r[0]) for r in conn.execute(stmt)]

    def fact_links(self, name: str, links: Sequence[str], code: str) -> list[str]:
        """Resource ids of the facts `name` with `code` whose `link` is one of `links` (no
        particular order). Raises: Unavailable."""
        found: list[str] = []
        with self.store.unit_of_work() as uow:
            conn = uow.connection(write=False)
            for start in range(0, len(links), 500):
                chunk = list(links[start : start + 500])
                stmt = sa.select(F.c.resource_id).where(
                    F.c.name == name, F.c.code == code, F.c.link.in_(chunk)
                )
                found.extend(str(r[0]) for r in conn.execute(stmt))
        return found

    def fact_hourly(
        self,
        name: str,
        start: date,
        end: date,
        *,
        code: str,
        projection: tuple[str, str],
        flag: tuple[str, Sequence[str]] | None = None,
    ) -> list[HourlyCount]:
        """Facts `name` of the period with `code` and a subject, counted per UTC hour of their
        start (no start: left out) and per `projection` = (name, resource type) value of their
        subject; `flagged`: those that the `link` of a fact `flag[0]` of the period whose stored
        `codes` is one of `flag[1]` points to. Raises: Unavailable."""
        with self.store.unit_of_work() as uow:
            conn = uow.connection(write=False)
            hour = _hour(conn, F.c.start)
            flagged: Any = sa.literal(0)
            if flag is not None and flag[1]:
                g = F.alias("flag")
                linked = (
                    sa.select(g.c.link)
                    .where(g.c.name == flag[0], g.c.codes.in_(list(flag[1])), g.c.link.is_not(None))
                    .where(*self._period(start, end, g))
                )
                flagged = sa.case((F.c.resource_id.in_(linked), 1), else_=0)
            stmt = (
                sa.select(hour, P.c.value, sa.func.count(), sa.func.sum(flagged))
                .select_from(F)
                .outerjoin(
                    P,
                    sa.and_(
                        P.c.name == projection[0],
                        P.c.resource_type == projection[1],
                        P.c.resource_id == F.c.subject,
                    ),
                )
                .where(
                    F.c.name == name,
                    F.c.code == code,
                    F.c.subject.is_not(None),
                    F.c.start > LOWEST,
                    *self._period(start, end),
                )
                .group_by(hour, P.c.value)
            )
            return [_hourly(r) for r in conn.execute(stmt)]


def _hour(conn: Connection, column: Any) -> Any:
    """`YYYY-MM-DD HH` of a UTC datetime column (SQLite stores `YYYY-MM-DD HH:MM:SS.ffffff`)."""
    if conn.dialect.name == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD HH24")
    return sa.func.substr(column, 1, 13)


def _hourly(row: Any) -> HourlyCount:
    hour = datetime.fromisoformat(f"{row[0]}:00+00:00")
    return HourlyCount(hour, row[1], int(row[2]), int(row[3] or 0))
