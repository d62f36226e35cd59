"""The driving criterion's ids, fetched first when there are few (FHIR R4B search §3.1.1).

A search whose most selective criterion matches a bounded number of resources (a reference to
one target: `Slot?schedule=Schedule/x`, `Observation?patient=`; a few codes: `Slot?_tag=`) runs
that criterion alone first, `LIMIT PROBE_LIMIT + 1`, and the page query then looks the
resources up by that literal id list (primary key probes). Written as one statement,
`resource.id IN (SELECT resource_id FROM index ...)`, the same search relies on the planner's
row estimates: on PostgreSQL, when the statistics predate a resource type's rows (a type first
written after the last ANALYZE, or rows written earlier in the same transaction, as
`publish_many` does), both sides are estimated at one row and the planner picks a nested-loop
semi-join that rescans every index row of the type and parameter for each resource of the type:
O(n²), 2-4 s per `Slot?schedule=` at 1M resources. The probe alone is one index range scan
(at worst one pass over the parameter's rows of the type), and the page statement reads
`resource` alone (at worst one pass over the type's rows, filtered by the id list), whatever
the statistics: linear, not quadratic (300k resources, stale statistics: 7 s -> 3 ms).

On PostgreSQL the other positive criteria on index tables then narrow that id list, one
statement on their index table each (`narrow_ids`); the page query keeps only the negations,
chains and `_has` (correlated EXISTS) and the sort. Chains and `_has` probe their inner
criterion first the same way. When a probe finds more than
`PROBE_LIMIT` rows, or the criterion cannot be probed (negations, `_id`, `_lastUpdated`), the
caller keeps the single-statement semi-join: large sets are what the planner's statistics
describe well, and there it can walk the resources in id order and stop at the page's end.

May import: sqlalchemy, the standard library, `ehr_store.search.{query,sql_conditions,tables}`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ehr_store.search.query import Chain, Criterion, Filter, Has
from ehr_store.search.sql_conditions import value_condition
from ehr_store.search.tables import INDEX_TABLES, reference_index

__all__ = ["PROBE_LIMIT", "narrow_ids", "probe_ids", "probeable"]

PROBE_LIMIT = 1000
_NEGATED = ("missing", "not", "not-in")


def probeable(c: Criterion) -> bool:
    """Whether `c` is an index-table criterion whose ids `probe_ids` can fetch."""
    if isinstance(c, Filter):
        return c.param.code not in ("_id", "_lastUpdated") and c.modifier not in _NEGATED
    if isinstance(c, Chain):
        return all(probeable(inner) for _, inner in c.targets)
    return isinstance(c, Has) and probeable(c.inner)


def probe_ids(session: Any, c: Criterion, rtype: str, dialect: str) -> list[str] | None:
    """The ids of the `rtype` resources matching `c` (deleted ones included: the caller's query
    checks the resource rows), or None when there are more than `PROBE_LIMIT` index rows or `c`
    is not `probeable`. `session`: a SQLAlchemy Session or Connection. Raises: sqlalchemy
    errors from the database."""
    if not probeable(c):
        return None
    if isinstance(c, Filter):
        t = INDEX_TABLES[c.param.type]
        stmt = sa.select(t.c.resource_id).where(
            t.c.resource_type == rtype,
            t.c.param == c.param.code,
            sa.or_(*(value_condition(t, c.param.type, c.modifier, v, dialect) for v in c.values)),
        )
        return _bounded(session, stmt)
    x = reference_index
    if isinstance(c, Chain):
        alts = []
        for target_type, inner in c.targets:
            ids = probe_ids(session, inner, target_type, dialect)
            if ids is None:
                return None
            if ids:
                alts.append(sa.and_(x.c.target_type == target_type, x.c.target_id.in_(ids)))
        if not alts:
            return []
        stmt = sa.select(x.c.resource_id).where(
            x.c.resource_type == rtype, x.c.param == c.param.code, sa.or_(*alts)
        )
        return _bounded(session, stmt)
    assert isinstance(c, Has)
    inner_ids = probe_ids(session, c.inner, c.source_type, dialect)
    if not inner_ids:
        return inner_ids
    stmt = sa.select(x.c.target_id).where(
        x.c.resource_type == c.source_type,
        x.c.param == c.ref_param.code,
        x.c.target_type == rtype,
        x.c.resource_id.in_(inner_ids),
        x.c.target_id.is_not(None),
    )
    return _bounded(session, stmt)


def narrow_ids(session: Any, f: Filter, rtype: str, ids: list[str], dialect: str) -> list[str]:
    """Those of `ids` (of `rtype`) that match the probeable filter `f`: one statement on the
    index table alone, `resource_id IN (:ids)` (no join for the planner to get wrong).
    Raises: sqlalchemy errors from the database."""
    if not ids:
        return []
    t = INDEX_TABLES[f.param.type]
    stmt = sa.select(t.c.resource_id).where(
        t.c.resource_type == rtype,
        t.c.resource_id.in_(ids),
        t.c.param == f.param.code,
        sa.or_(*(value_condition(t, f.param.type, f.modifier, v, dialect) for v in f.values)),
    )
    return sorted(set(session.execute(stmt).scalars().all()))


def _bounded(session: Any, stmt: Any) -> list[str] | None:
    """The distinct first column of `stmt`, or None past `PROBE_LIMIT` rows (not distinct:
    DISTINCT would read every match before the LIMIT)."""
    rows = session.execute(stmt.limit(PROBE_LIMIT + 1)).scalars().all()
    if len(rows) > PROBE_LIMIT:
        return None
    return sorted(set(rows))
