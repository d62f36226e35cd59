"""Aggregates over the search index, for reports that must not page every matching resource
through Python (the disease-control dashboard at a million resources), and a small read model.

- `IndexAggregates.token_counts`: the codes of one token parameter among the resources matching a
  search, with how many resources carry each (e.g. which ICD-10 codes the Conditions of a period
  use, so a report fetches only the notifiable ones).
- `IndexAggregates.hourly_counts`: resources matching a search, counted per UTC hour their
  `date_param` range starts in and per a projected value of the resource they reference (e.g.
  outpatient Encounters per hour and home county of the Patient), with how many of them are
  referenced by a match of a second search (e.g. by an influenza-like-illness Condition).
- The read model `resource_projection` (Alembic revision 0007_projection): one derived value per
  resource and projection name (e.g. a Patient's home county), computed by the caller's function
  from the stored JSON. `refresh_projection` brings it up to date lazily: resources whose
  `lastUpdated` is at or after the projection's mark minus `MARGIN` and whose version differs from
  the projected one are re-derived (the first refresh derives every resource of the type). A write
  committed more than `MARGIN` after its `lastUpdated` stamp is picked up at its next change.

The searches are the store's own (`ehr_store.search.matching_ids`, same conditions as a search).
SQL stores only: `IndexAggregates(store)` raises NotSupported for others (callers fall back to
paging through searches).

May import: sqlalchemy, sqlmodel, the standard library, `ehr_store` modules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from ehr_store.errors import NotSupported
from ehr_store.repository import SearchParams, Store
from ehr_store.search import INDEX_TABLES, matching_ids
from ehr_store.sql import SqlStore
from ehr_store.tables import UtcDateTime
from ehr_store.tables import resource_table as R

__all__ = ["MARGIN", "HourlyCount", "IndexAggregates", "projection_table"]

Json = dict[str, Any]
MARGIN = timedelta(minutes=10)
projection_table = sa.Table(
    "resource_projection",
    SQLModel.metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("resource_type", sa.String(64), primary_key=True),
    sa.Column("resource_id", sa.String(64), primary_key=True),
    sa.Column("version_id", sa.Integer, nullable=False),
    sa.Column("value", sa.String(255), nullable=True),
)
mark_table = sa.Table(
    "resource_projection_mark",
    SQLModel.metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("resource_type", sa.String(64), primary_key=True),
    sa.Column("last_updated", UtcDateTime(), nullable=False),
)
P, M = projection_table, mark_table
TOKEN, DATE, REF = INDEX_TABLES["token"], INDEX_TABLES["date"], INDEX_TABLES["reference"]


@dataclass(frozen=True, slots=True)
class HourlyCount:
    """`total` resources whose date range starts in the UTC hour `hour` and whose referenced
    resource projects to `group` (None: no such resource or no value); `flagged` of them are
    referenced by a match of the flag search."""

    hour: datetime
    group: str | None
    total: int
    flagged: int


def _upsert(conn: Connection, table: sa.Table, keys: list[str], rows: list[dict[str, Any]]) -> None:
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table)
    update = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    for start in range(0, len(rows), 1000):
        conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=update), rows[start : start + 1000])


class IndexAggregates:
    """Aggregate queries over one SQL store's search index (see module docstring)."""

    def __init__(self, store: Store) -> None:
        """Raises: NotSupported (not a SQL store)."""
        if not isinstance(store, SqlStore):
            raise NotSupported("index aggregates need a SQL store")
        self.store = store

    def _ids(self, conn: Connection, resource_type: str, params: SearchParams) -> Any:
        indexer = self.store.indexer
        return matching_ids(
            conn,
            resource_type,
            params,
            settings=self.store.settings,
            registry=indexer.registry,
            code_sets=indexer.code_sets,
        )

    def token_counts(
        self, resource_type: str, params: SearchParams, token_param: str
    ) -> list[tuple[str | None, str | None, int]]:
        """[(system, code, resources)] of `token_param` among the `resource_type` resources
        matching `params` (FHIR R4B search §3.1.1.4.9 token values). Raises: InvalidInput."""
        with self.store.unit_of_work() as uow:
            conn = uow.flushed_connection()
            stmt = (
                sa.select(TOKEN.c.system, TOKEN.c.code, sa.func.count(sa.distinct(TOKEN.c.resource_id)))
                .where(
                    TOKEN.c.resource_type == resource_type,
                    TOKEN.c.param == token_param,
                    TOKEN.c.resource_id.in_(self._ids(conn, resource_type, params)),
                )
                .group_by(TOKEN.c.system, TOKEN.c.code)
            )
            return [(r[0], r[1], int(r[2])) for r in conn.execute(stmt)]

    def hourly_counts(
        self,
        resource_type: str,
        params: SearchParams,
        *,
        date_param: str,
        group_reference: str,
        projection: str,
        token: tuple[str, str] | None = None,
        flag: tuple[str, SearchParams, str] | None = None,
    ) -> list[HourlyCount]:
        """Counts of the `resource_type` resources matching `params` (see `HourlyCount`): per UTC
        hour of the start of their `date_param` range (resources without a start are left out),
        per `projection` value of the resource their `group_reference` points to (those without
        the reference are left out); only those with token `token` = (param, code) when given;
        `flagged`: referenced through `flag` = (type, search, reference param). Raises: InvalidInput."""
        with self.store.unit_of_work() as uow:
            conn = uow.flushed_connection()
            if conn.dialect.name == "postgresql":
                hour = sa.func.to_char(sa.func.timezone("UTC", DATE.c.start), "YYYY-MM-DD HH24")
            else:
                hour = sa.func.strftime("%Y-%m-%d %H", DATE.c.start)
            ref = REF.alias("grp")
            where = [
                DATE.c.resource_type == resource_type,
                DATE.c.param == date_param,
                DATE.c.start > datetime(1, 1, 3, tzinfo=UTC),  # no start: the index's lowest date
                DATE.c.resource_id.in_(self._ids(conn, resource_type, params)),
            ]
            if token is not None:
                tok = TOKEN.alias("tok")
                where.append(
                    sa.exists().where(
                        tok.c.resource_type == resource_type,
                        tok.c.resource_id == DATE.c.resource_id,
                        tok.c.param == token[0],
                        tok.c.code == token[1],
                    )
                )
            flagged: Any = sa.literal(None)
            if flag is not None:
                f = REF.alias("flag")
                referenced = sa.exists().where(
                    f.c.resource_type == flag[0],
                    f.c.param == flag[2],
                    f.c.target_type == resource_type,
                    f.c.target_id == DATE.c.resource_id,
                    f.c.resource_id.in_(self._ids(conn, flag[0], flag[1])),
                )
                flagged = sa.case((referenced, DATE.c.resource_id), else_=None)
            stmt = (
                sa.select(
                    hour,
                    P.c.value,
                    sa.func.count(sa.distinct(DATE.c.resource_id)),
                    sa.func.count(sa.distinct(flagged)),
                )
                .select_from(DATE)
                .join(
                    ref,
                    sa.and_(
                        ref.c.resource_type == DATE.c.resource_type,
                        ref.c.resource_id == DATE.c.resource_id,
                        ref.c.param == group_reference,
                    ),
                )
                .outerjoin(
                    P,
                    sa.and_(
                        P.c.name == projection,
                        P.c.resource_type == ref.c.target_type,
                        P.c.resource_id == ref.c.target_id,
                    ),
                )
                .where(*where)
                .group_by(hour, P.c.value)
            )
            return [
                HourlyCount(
                    datetime.strptime(r[0], "%Y-%m-%d %H").replace(tzinfo=UTC), r[1], int(r[2]), int(r[3])
                )
                for r in conn.execute(stmt)
            ]

    def last_changed(self, resource_types: tuple[str, ...]) -> tuple[datetime | None, ...]:
        """The newest `meta.lastUpdated` of each type (writes and deletions alike; None: no
        resource), from the `(resource_type, last_updated)` index: a cheap key for caching a
        report over those types. Raises: Unavailable."""
        with self.store.unit_of_work() as uow:
            conn = uow.flushed_connection()
            stmt = sa.select(sa.func.max(R.c.last_updated)).where(R.c.resource_type == sa.bindparam("rt"))
            found = [conn.execute(stmt, {"rt": t}).scalar_one_or_none() for t in resource_types]
        return tuple(v if v is None or v.tzinfo else v.replace(tzinfo=UTC) for v in found)

    def refresh_projection(self, name: str, resource_type: str, derive: Callable[[Json], str | None]) -> int:
        """Bring projection `name` of `resource_type` up to date (see module docstring):
        `derive(resource JSON)` gives the value (None for none; deleted resources project to None).
        Returns the number of resources re-derived. Raises: Unavailable, Conflict."""
        with self.store.unit_of_work() as uow:
            conn = uow.flushed_connection()
            mark = conn.execute(
                sa.select(M.c.last_updated).where(M.c.name == name, M.c.resource_type == resource_type)
            ).scalar_one_or_none()
            stmt = (
                sa.select(R.c.id, R.c.version_id, R.c.deleted, R.c.content, R.c.last_updated)
                .outerjoin(
                    P,
                    sa.and_(
                        P.c.name == name, P.c.resource_type == R.c.resource_type, P.c.resource_id == R.c.id
                    ),
                )
                .where(
                    R.c.resource_type == resource_type,
                    sa.or_(P.c.version_id.is_(None), P.c.version_id != R.c.version_id),
                )
            )
            if mark is not None:
                stmt = stmt.where(R.c.last_updated >= mark - MARGIN)
            rows: list[dict[str, Any]] = []
            latest = mark
            for r in conn.execute(stmt):
                value = None if r.deleted or not r.content else derive(orjson.loads(r.content))
                rows.append(
                    {
                        "name": name,
                        "resource_type": resource_type,
                        "resource_id": r.id,
                        "version_id": r.version_id,
                        "value": value[:255] if value else None,
                    }
                )
                latest = r.last_updated if latest is None or r.last_updated > latest else latest
        if not rows:
            return 0
        with self.store.unit_of_work(write=True) as uow:
            conn = uow.connection(write=True)
            _upsert(conn, P, ["name", "resource_type", "resource_id"], rows)
            _upsert(
                conn,
                M,
                ["name", "resource_type"],
                [{"name": name, "resource_type": resource_type, "last_updated": latest}],
            )
            uow.commit()
        return len(rows)
