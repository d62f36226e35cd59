"""Search index tables (one per parameter type) and their writers.

Every table is keyed by `(resource_type, resource_id, param)` and joins `resource` on
`(resource_type, id)`. Rows are replaced in the writer's transaction (the caller's unit of
work); deleted resources have no rows, so they never match. Indexes serve the target
queries: value lookups lead with `(resource_type, param, value...)`, the per-resource checks
of EXISTS sub-queries use `(resource_type, resource_id, param)`, and reverse lookups
(`_revinclude`, `_has`) use `(target_type, target_id)`.

Tables are plain Core tables on `SQLModel.metadata` (no surrogate keys: they are never
addressed row by row). May import: sqlalchemy, sqlmodel, `ehr_store.tables`,
`ehr_store.search.extract`, the standard library.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlmodel import SQLModel

from ehr_store.bulk import bulk_insert
from ehr_store.search.entries import IndexEntries, fit
from ehr_store.tables import UtcDateTime

__all__ = [
    "INDEX_TABLES",
    "date_index",
    "delete_index",
    "number_index",
    "quantity_index",
    "reference_index",
    "string_index",
    "token_index",
    "uri_index",
    "write_index",
    "write_indexes",
]


class DecimalValue(sa.types.TypeDecorator[Decimal]):
    """Exact NUMERIC on PostgreSQL; REAL on SQLite (which has no decimal type)."""

    impl = sa.Numeric(38, 12)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.Float())
        return dialect.type_descriptor(sa.Numeric(38, 12))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return float(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(str(value))


def _key_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("param", sa.String(100), nullable=False),
    ]


def _table(name: str, *columns: sa.Column[Any], indexes: Sequence[tuple[str, ...]] = ()) -> sa.Table:
    table = sa.Table(name, SQLModel.metadata, *_key_columns(), *columns)
    sa.Index(f"ix_{name}_resource", table.c.resource_type, table.c.resource_id, table.c.param)
    for cols in indexes:
        sa.Index(f"ix_{name}_{'_'.join(cols[2:]) or cols[-1]}", *(table.c[c] for c in cols))
    return table


token_index = _table(
    "search_token",
    sa.Column("system", sa.String(255), nullable=True),
    sa.Column("code", sa.String(255), nullable=True),
    sa.Column("text", sa.Text, nullable=True),
    indexes=[("resource_type", "param", "code", "system")],
)
string_index = _table(
    "search_string",
    sa.Column("value", sa.String(255), nullable=False),
    sa.Column("exact", sa.String(255), nullable=False),
)
sa.Index(
    "ix_search_string_value",
    string_index.c.resource_type,
    string_index.c.param,
    string_index.c.value,
    postgresql_ops={"value": "text_pattern_ops"},
)
date_index = _table(
    "search_date",
    sa.Column("start", UtcDateTime(), nullable=False),
    sa.Column("end", UtcDateTime(), nullable=False),
    indexes=[("resource_type", "param", "start"), ("resource_type", "param", "end")],
)
reference_index = _table(
    "search_reference",
    sa.Column("target_type", sa.String(64), nullable=True),
    sa.Column("target_id", sa.String(64), nullable=True),
    sa.Column("url", sa.String(512), nullable=True),
    sa.Column("identifier_system", sa.String(255), nullable=True),
    sa.Column("identifier_value", sa.String(255), nullable=True),
    indexes=[
        ("resource_type", "param", "target_id", "target_type"),
        ("target_type", "target_id"),
        ("resource_type", "param", "url"),
        ("resource_type", "param", "identifier_value"),
    ],
)
quantity_index = _table(
    "search_quantity",
    sa.Column("value", DecimalValue(), nullable=False),
    sa.Column("low", DecimalValue(), nullable=False),
    sa.Column("high", DecimalValue(), nullable=False),
    sa.Column("system", sa.String(255), nullable=True),
    sa.Column("code", sa.String(255), nullable=True),
    sa.Column("unit", sa.String(255), nullable=True),
    indexes=[("resource_type", "param", "value")],
)
number_index = _table(
    "search_number",
    sa.Column("value", DecimalValue(), nullable=False),
    sa.Column("low", DecimalValue(), nullable=False),
    sa.Column("high", DecimalValue(), nullable=False),
    indexes=[("resource_type", "param", "value")],
)
uri_index = _table(
    "search_uri",
    sa.Column("uri", sa.String(512), nullable=False),
    indexes=[("resource_type", "param", "uri")],
)

INDEX_TABLES: dict[str, sa.Table] = {
    "token": token_index,
    "string": string_index,
    "date": date_index,
    "reference": reference_index,
    "quantity": quantity_index,
    "number": number_index,
    "uri": uri_index,
}


def _rows(resource_type: str, resource_id: str, items: Iterable[Any]) -> list[dict[str, Any]]:
    rows = []
    for entry in items:
        row = entry._asdict()  # as `fit_entry` does, without building the dict twice
        for key, value in row.items():
            if type(value) is str and len(value) > 64:
                row[key] = fit(key, value)
        row["resource_type"] = resource_type
        row["resource_id"] = resource_id
        rows.append(row)
    return rows


def write_index(
    session: Any, resource_type: str, id: str, entries: IndexEntries, *, replace: bool = True
) -> None:
    """Replace the index rows of one resource, in the caller's transaction.

    `session`: a SQLAlchemy/SQLModel Session or Connection. `replace=False` skips the delete
    (a resource created in this transaction has no rows yet). Over-long values are cut to
    the column sizes (255/512 chars). Raises: sqlalchemy errors from the database.
    """
    write_indexes(session, [(resource_type, id, entries)], replace=replace)


def write_indexes(
    session: Any, items: Sequence[tuple[str, str, IndexEntries]], *, replace: bool = True
) -> None:
    """`write_index` for many resources: one DELETE and one executemany INSERT per table."""
    if not items:
        return
    if replace:
        delete_index_many(session, [(t, i) for t, i, _ in items])
    for kind, table in INDEX_TABLES.items():
        rows: list[dict[str, Any]] = []
        for resource_type, resource_id, entries in items:
            rows.extend(_rows(resource_type, resource_id, getattr(entries, kind)))
        if rows and isinstance(session, Connection):
            bulk_insert(session, table, rows)  # COPY on PostgreSQL, the driver's executemany on SQLite
        elif rows:
            session.execute(table.insert(), rows)


def delete_index(session: Any, resource_type: str, id: str) -> None:
    """Remove all index rows of one resource (on delete). Raises: sqlalchemy errors."""
    delete_index_many(session, [(resource_type, id)])


def delete_index_many(session: Any, keys: Sequence[tuple[str, str]]) -> None:
    """Remove the index rows of many resources: one statement per table (and 500 keys), its
    condition an OR of `resource_type = t AND resource_id IN (...)` per type (indexed on
    both dialects; SQLite scans the table for a row-value `IN`)."""
    unique = sorted(set(keys))
    postgres = isinstance(session, Connection) and session.dialect.name == "postgresql"
    for start in range(0, len(unique), 500):
        types, params = keys_params(unique[start:start + 500])
        if postgres:  # one round-trip: the other tables' DELETEs as data-modifying CTEs
            session.execute(_delete_all_statement(types), params)
            continue
        for table in INDEX_TABLES.values():
            session.execute(_delete_statement(table, types), params)


@lru_cache(maxsize=1024)
def _delete_statement(table: sa.Table, types: tuple[str, ...]) -> Any:
    return table.delete().where(keys_condition(table.c.resource_type, table.c.resource_id, types))


@lru_cache(maxsize=256)
def _delete_all_statement(types: tuple[str, ...]) -> Any:
    """PostgreSQL: `WITH d_token AS (DELETE ...), ... DELETE FROM search_uri ...` (a
    data-modifying CTE runs once and to completion whether or not it is referenced)."""
    *first, last = INDEX_TABLES.items()
    ctes = [_delete_statement(table, types).cte(f"d_{kind}") for kind, table in first]
    return _delete_statement(last[1], types).add_cte(*ctes)


def keys_params(keys: Iterable[tuple[str, str]]) -> tuple[tuple[str, ...], dict[str, list[str]]]:
    """(types, parameters) for `keys_condition`: the resource types in order, and the ids of
    the i-th type as parameter `keys_i`."""
    by_type: dict[str, list[str]] = {}
    for resource_type, resource_id in keys:
        by_type.setdefault(resource_type, []).append(resource_id)
    types = tuple(sorted(by_type))
    return types, {f"keys_{i}": by_type[t] for i, t in enumerate(types)}


def keys_condition(type_column: Any, id_column: Any, types: tuple[str, ...]) -> Any:
    """`(type, id) IN keys` as an OR of `type = t AND id IN :keys_i` per type (index friendly;
    statements built from it can be cached per tuple of types, see `keys_params`)."""
    return sa.or_(*(
        sa.and_(type_column == t, id_column.in_(sa.bindparam(f"keys_{i}", expanding=True)))
        for i, t in enumerate(types)
    ))
