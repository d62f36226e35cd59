"""Bulk INSERT of many rows into one table, in the caller's transaction, at driver speed.

A unit of work writes its index, history and new resource rows in bulk at flush. Through
SQLAlchemy's executemany each row costs parameter processing in Python, and on PostgreSQL
a multi-row INSERT's long SQL text (different for every row count) costs psycopg a parse
of ~1.5 ms per statement. So:
- PostgreSQL: `COPY table (columns) FROM STDIN` through psycopg (text format; JSON
  documents sent as text, UTC datetimes aware) from `COPY_MIN_ROWS` rows on, a plain
  multi-row INSERT below;
- SQLite: the driver's `executemany` with each column's SQLAlchemy bind processor applied
  once per value (the same stored form as SQLAlchemy writes);
- anything else: SQLAlchemy's executemany.

May import: sqlalchemy, the standard library, `ehr_store.tables`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from ehr_store.tables import JsonDocument, UtcDateTime

__all__ = ["bulk_insert"]

Processor = Callable[[Any], Any] | None
COPY_MIN_ROWS = 16
"""Fewer rows go as one INSERT: a COPY takes an extra round-trip, which only pays off when
it saves psycopg the parse of a long multi-row INSERT (one resource per unit of work:
~250 against ~550 creates/s under load)."""


def bulk_insert(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `rows` (dicts keyed by column name; absent keys are NULL) into `table`.

    Raises: sqlalchemy.exc.DBAPIError (e.g. IntegrityError) like `conn.execute` would;
    ValueError (or a StatementError wrapping it) for a naive datetime in a UTC column.
    """
    if not rows:
        return
    name = conn.dialect.name
    if name == "postgresql" and len(rows) >= COPY_MIN_ROWS:
        _copy(conn, table, rows)
    elif name == "sqlite":
        _executemany(conn, table, rows)
    else:
        conn.execute(table.insert(), list(rows))


def _copy(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    sql, columns, convert = _copy_plan(conn.dialect, table)
    driver = conn.connection.driver_connection
    assert driver is not None
    try:
        with driver.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                values = [row.get(c) for c in columns]
                copy.write_row([f(v) if f else v for v, f in zip(values, convert, strict=True)])
    except Exception as exc:  # as SQLAlchemy would raise it (IntegrityError, OperationalError, ...)
        dbapi = conn.dialect.loaded_dbapi
        if isinstance(exc, dbapi.Error):
            raise sa.exc.DBAPIError.instance(sql, None, exc, dbapi.Error, dialect=conn.dialect) from exc
        raise


def _json_text(value: Any) -> Any:
    return bytes(value).decode("utf-8") if isinstance(value, bytes | bytearray | memoryview) else value


def _utc(value: Any) -> Any:
    if value is not None and value.tzinfo is None:
        raise ValueError("naive datetime given for a UTC column")
    return value


@lru_cache(maxsize=64)
def _copy_plan(dialect: Dialect, table: sa.Table) -> tuple[str, tuple[str, ...], tuple[Processor, ...]]:
    quote = dialect.identifier_preparer.quote
    columns = tuple(c.name for c in table.columns)
    convert: list[Processor] = []
    for column in table.columns:
        if isinstance(column.type, JsonDocument):
            convert.append(_json_text)
        elif isinstance(column.type, UtcDateTime):
            convert.append(_utc)
        else:
            convert.append(None)
    sql = f"COPY {quote(table.name)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
    return sql, columns, tuple(convert)


def _executemany(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    sql, columns, processors = _sqlite_plan(conn.dialect, table)
    take = operator.itemgetter(*columns)
    convert = [(i, p) for i, p in enumerate(processors) if p is not None]
    params: list[Any] = []
    for row in rows:
        try:
            values = take(row) if len(columns) > 1 else (take(row),)
        except KeyError:  # absent keys are NULL
            values = tuple(row.get(c) for c in columns)
        if convert:
            values = list(values)
            for i, process in convert:
                values[i] = process(values[i])
        params.append(tuple(values))
    conn.exec_driver_sql(sql, params)


@lru_cache(maxsize=64)
def _sqlite_plan(dialect: Dialect, table: sa.Table) -> tuple[str, tuple[str, ...], tuple[Processor, ...]]:
    quote = dialect.identifier_preparer.quote
    columns = tuple(c.name for c in table.columns)
    processors = tuple(c.type.dialect_impl(dialect).bind_processor(dialect) for c in table.columns)
    placeholders = ", ".join("?" for _ in columns)
    sql = f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) VALUES ({placeholders})"
    return sql, columns, processors
