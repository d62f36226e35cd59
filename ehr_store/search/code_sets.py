"""Code sets behind the token modifiers `:in`, `:not-in`, `:below`, `:above` (FHIR R4B search
§3.1.1.5.5), without an SQL `IN` list.

`ehr_store` knows no terminology. A resolver callable, given to the store by the
composition root (`use_code_set_resolver(store, resolver)`; `terminology.TerminologyService`
attaches itself to the store it is built on), turns a modifier value into a `CodeSet`: a
content-addressed key and the (system, code) pairs. The memory store tests membership in
the Python set. The SQL stores materialise a set once into `search_code_set` (rows) and
`search_code_set_key` (one header row per set), written and committed on a connection of
their own so every later search finds them, and join the token index against it with a
correlated EXISTS on the table's primary key. Sets are keyed by content, so a changed
ValueSet gives a new key and old rows never answer for it.

May import: sqlalchemy, sqlmodel, the standard library, `ehr_store.{errors,bulk}`,
`ehr_store.search.{entries,query}`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from ehr_store.bulk import bulk_insert
from ehr_store.errors import InvalidInput, NotFound, NotSupported
from ehr_store.search.entries import fit
from ehr_store.search.query import Chain, CodeSetValue, Criterion, Filter, SearchQuery

__all__ = [
    "CodeSet",
    "CodeSetResolver",
    "CodeSets",
    "code_set_key_table",
    "code_set_table",
    "make_code_set",
    "use_code_set_resolver",
    "write_code_set",
]

code_set_table = sa.Table(
    "search_code_set",
    SQLModel.metadata,
    sa.Column("set_key", sa.String(80), primary_key=True),
    sa.Column("system", sa.String(255), primary_key=True),
    sa.Column("code", sa.String(255), primary_key=True),
)
code_set_key_table = sa.Table(
    "search_code_set_key",
    SQLModel.metadata,
    sa.Column("set_key", sa.String(80), primary_key=True),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
)
_OUTSIDE_WAIT_MS = 200  # SQLite: how long the own-connection write waits for the write lock


@dataclass(frozen=True, slots=True)
class CodeSet:
    """A resolved set: `key` (content hash, ≤ 80 chars), `label` (what was asked, for
    people), `codes` ((system, code) pairs)."""

    key: str
    label: str
    codes: frozenset[tuple[str, str]]


CodeSetResolver = Callable[[str, "str | None", str], CodeSet]
"""`(kind, system, value) -> CodeSet`: kind "in" (value a ValueSet canonical url, optionally
`url|version`; system None) or "below"/"above" (a code of `system` with its descendants /
ancestors). Raises NotFound for an unknown value set or code system (reported to the client
as InvalidInput naming the parameter)."""


def make_code_set(label: str, codes: Iterable[tuple[str, str]]) -> CodeSet:
    """A `CodeSet` whose key is the SHA-256 of its sorted (system, code) pairs."""
    frozen = frozenset(codes)
    digest = hashlib.sha256()
    for system, code in sorted(frozen):
        digest.update(f"{system}\x1f{code}\x1e".encode())
    return CodeSet(f"cs:{digest.hexdigest()}", label, frozen)


def write_code_set(conn: Connection, code_set: CodeSet) -> bool:
    """Materialise `code_set` in the caller's transaction unless its key is there already.

    Returns True when rows were written. Raises: sqlalchemy.exc.DBAPIError.
    """
    dialect = conn.dialect.name
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    header = insert(code_set_key_table).values(
        set_key=code_set.key, label=code_set.label, size=len(code_set.codes)
    )
    if conn.execute(header.on_conflict_do_nothing()).rowcount == 0:
        return False
    pairs = {(fit("system", s), fit("code", c)) for s, c in code_set.codes}
    rows = [{"set_key": code_set.key, "system": s, "code": c} for s, c in sorted(pairs)]
    if rows:
        bulk_insert(conn, code_set_table, rows)
    return True


class CodeSets:
    """One store's resolver and (SQL) the set keys known to be materialised (thread-safe)."""

    def __init__(self) -> None:
        self.resolver: CodeSetResolver | None = None
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def bind(self, query: SearchQuery) -> SearchQuery:
        """Fill in key and codes of every `CodeSetValue` of `query` (in place; returned).

        Raises: NotSupported (no resolver), InvalidInput (unknown ValueSet or code system,
        naming the parameter), TooCostly (a set that cannot be enumerated).
        """
        if any(True for _ in _values(query.criteria)):
            query.criteria = [self._bind(c) for c in query.criteria]
        return query

    def materialise(self, conn: Connection, query: SearchQuery) -> None:
        """Make sure every bound set of `query` is in the membership table and visible to
        `conn` (the unit of work's connection). Written on a connection of its own and
        committed; when that cannot be (SQLite: this unit holds the write lock, or its
        snapshot predates the set) it is written in the unit's own transaction instead.
        Raises: sqlalchemy.exc.DBAPIError (translated by the unit of work).
        """
        for value in _values(query.criteria):
            if value.key is None or value.key in self._known:
                continue
            code_set = CodeSet(value.key, f"{value.kind}:{value.system or ''}|{value.value}", value.codes)
            if _write_outside(conn, code_set) and _present(conn, code_set.key):
                with self._lock:
                    self._known.add(code_set.key)
                continue
            write_code_set(conn, code_set)

    def _bind(self, c: Criterion) -> Criterion:
        if isinstance(c, Filter):
            if not any(isinstance(v, CodeSetValue) and v.key is None for v in c.values):
                return c
            values = tuple(self._resolve(c, v) if isinstance(v, CodeSetValue) else v for v in c.values)
            return replace(c, values=values)
        if isinstance(c, Chain):
            return replace(c, targets=tuple((t, self._bind(inner)) for t, inner in c.targets))
        return replace(c, inner=self._bind(c.inner))

    def _resolve(self, f: Filter, value: CodeSetValue) -> CodeSetValue:
        if value.key is not None:
            return value
        name = f"{f.param.code}:{f.modifier}"
        if self.resolver is None:
            raise NotSupported(
                f"{name} needs the terminology service, which this store was not given", expression=(name,)
            )
        try:
            found = self.resolver(value.kind, value.system, value.value)
        except NotFound as exc:
            raise InvalidInput(f"{name}: {exc.diagnostics}", expression=(name,)) from None
        return replace(value, key=found.key, codes=found.codes)


def use_code_set_resolver(store: object, resolver: CodeSetResolver | None) -> None:
    """Give `store` (MemoryStore or SqlStore: their `code_sets` attribute) the resolver of
    `:in`/`:not-in`/`:below`/`:above`; None takes it away (the modifiers are then NotSupported).

    Raises: NotSupported (a store without code-set support).
    """
    holder = getattr(store, "code_sets", None)
    if not isinstance(holder, CodeSets):
        raise NotSupported(f"{type(store).__name__} does not support code-set search modifiers")
    holder.resolver = resolver


def _values(criteria: Iterable[Criterion]) -> Iterator[CodeSetValue]:
    for c in criteria:
        if isinstance(c, Filter):
            yield from (v for v in c.values if isinstance(v, CodeSetValue))
        elif isinstance(c, Chain):
            yield from _values(inner for _, inner in c.targets)
        else:
            yield from _values((c.inner,))


def _present(conn: Connection, key: str) -> bool:
    stmt = sa.select(code_set_key_table.c.size).where(code_set_key_table.c.set_key == key)
    return conn.execute(stmt).first() is not None


def _write_outside(conn: Connection, code_set: CodeSet) -> bool:
    """Write the set on another connection of the engine and commit; False when SQLite's
    write lock could not be had within `_OUTSIDE_WAIT_MS` (this unit may hold it)."""
    try:
        with conn.engine.connect() as other:
            raw: Any = other.connection.dbapi_connection
            is_sqlite = other.dialect.name == "sqlite"
            previous = 0
            if is_sqlite:
                cursor = raw.cursor()
                previous = int(cursor.execute("PRAGMA busy_timeout").fetchone()[0])
                cursor.execute(f"PRAGMA busy_timeout={_OUTSIDE_WAIT_MS}")
            try:
                with other.begin():
                    write_code_set(other, code_set)
            finally:
                if is_sqlite:
                    raw.cursor().execute(f"PRAGMA busy_timeout={previous}")
    except sa.exc.OperationalError as exc:
        if "locked" in str(exc.orig) or "busy" in str(exc.orig):
            return False
        raise
    return True
