"""`_include` / `_revinclude` (with `:iterate`) over the SQL store: one query per include
parameter and resource type over the page's ids, never one per resource (FHIR R4B search §3.1.1.7.4).

May import: sqlalchemy, the standard library, `ehr_store.{model,tables}`, `ehr_store.search.{query,tables}`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ehr_store.model import StoredResource
from ehr_store.search.query import Include, SearchQuery
from ehr_store.search.tables import reference_index
from ehr_store.tables import resource_table

__all__ = ["includes", "row_columns", "stored_from_row"]

R = resource_table
_MAX_ITERATE = 3


def row_columns() -> list[Any]:
    return [R.c.resource_type, R.c.id, R.c.version_id, R.c.last_updated, R.c.deleted, R.c.content]


def stored_from_row(row: Any) -> StoredResource:
    content = row.content
    data = content.encode("utf-8") if isinstance(content, str) else bytes(content or b"")
    return StoredResource(row.resource_type, row.id, row.version_id, row.last_updated, row.deleted, data)


def includes(session: Any, query: SearchQuery, matches: list[StoredResource]) -> list[StoredResource]:
    """Resources named by the query's includes from `matches` (and, for `:iterate`, from what
    was included, up to 3 rounds); each once, none of the matches, none deleted."""
    seen = {(m.resource_type, m.id) for m in matches}
    included: list[StoredResource] = []
    frontier = matches
    for round_no in range(_MAX_ITERATE + 1):
        found: list[StoredResource] = []
        for inc in query.includes:
            if round_no > 0 and not inc.iterate:
                continue
            for stored in _include_rows(session, inc, frontier):
                key = (stored.resource_type, stored.id)
                if key not in seen:
                    seen.add(key)
                    found.append(stored)
        if not found:
            break
        included.extend(found)
        frontier = found
    return included


def _include_rows(session: Any, inc: Include, frontier: list[StoredResource]) -> list[StoredResource]:
    x = reference_index
    results: list[StoredResource] = []
    by_type: dict[str, list[str]] = {}
    for m in frontier:
        by_type.setdefault(m.resource_type, []).append(m.id)
    for rtype, ids in by_type.items():
        if inc.reverse:
            sub = sa.select(x.c.resource_id).where(
                x.c.resource_type == inc.source_type, x.c.target_type == rtype, x.c.target_id.in_(ids)
            )
            if inc.param:
                sub = sub.where(x.c.param == inc.param)
            cond = sa.and_(R.c.resource_type == inc.source_type, R.c.id.in_(sub))
        else:
            if inc.source_type not in (rtype, "*"):
                continue
            sub = sa.select(x.c.target_type, x.c.target_id).where(
                x.c.resource_type == rtype, x.c.resource_id.in_(ids), x.c.target_id.is_not(None)
            )
            if inc.param:
                sub = sub.where(x.c.param == inc.param)
            if inc.target_type:
                sub = sub.where(x.c.target_type == inc.target_type)
            cond = sa.tuple_(R.c.resource_type, R.c.id).in_(sub)
        stmt = (
            sa.select(*row_columns()).where(cond, R.c.deleted.is_(False)).order_by(R.c.resource_type, R.c.id)
        )
        results.extend(stored_from_row(row) for row in session.execute(stmt).all())
    return results
