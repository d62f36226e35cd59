"""`EmpiIndex` over SQL (the EMPI tables), on the connection of the store's unit of work.

`SqlEmpiIndex(connection_source)` takes anything with `connection(write: bool) -> Connection`
(the store's `SqlUnitOfWork` has it) and never commits.

May import: sqlalchemy, orjson, the standard library, `ehr_store.empi.*`.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ehr_store.empi.features import Features
from ehr_store.empi.index import Candidate, LinkRecord, ReviewItem, ReviewStatus
from ehr_store.empi.tables import block_table as B
from ehr_store.empi.tables import link_table as L
from ehr_store.empi.tables import record_table as R
from ehr_store.empi.tables import review_table as Q


def _upsert_record(insert: Any) -> Any:
    stmt = insert(R)
    return stmt.on_conflict_do_update(
        index_elements=[R.c.source_id],
        set_={"golden_id": stmt.excluded.golden_id, "features": stmt.excluded.features,
              "updated_at": stmt.excluded.updated_at},
    )


_UPSERT_RECORD = {"postgresql": _upsert_record(postgresql.insert), "sqlite": _upsert_record(sqlite.insert)}
"""INSERT ... ON CONFLICT (source_id) DO UPDATE: one statement on both dialects."""


_GET_RECORD = sa.select(R).where(R.c.source_id == sa.bindparam("sid"))
# statements built once (per-call construction cost more than executing them on SQLite)
_DELETE_KEYS = sa.delete(B).where(B.c.source_id == sa.bindparam("sid"))
_INSERT_KEYS = sa.insert(B)
_INSERT_KEYS_UNNEST = sa.insert(B).from_select(
    ["key", "source_id"],
    sa.select(
        sa.func.unnest(sa.bindparam("keys", type_=postgresql.ARRAY(sa.String))),
        sa.bindparam("sid", type_=sa.String),
    ),
)
"""PostgreSQL: a source's blocking keys as one array parameter (one statement instead of a
multi-row insert, about 45 µs less client CPU a call)."""
_SET_GOLDEN = (
    sa.update(R)
    .where(R.c.source_id == sa.bindparam("sid"))
    .values(golden_id=sa.bindparam("gid"), updated_at=sa.bindparam("at"))
)
_SOURCES_OF = sa.select(R.c.source_id).where(R.c.golden_id == sa.bindparam("gid")).order_by(R.c.source_id)
_INSERT_LINK = sa.insert(L).returning(L.c.id)
_UNDO_LINKS = (
    sa.update(L)
    .where(L.c.source_id == sa.bindparam("sid"), L.c.undone_at.is_(None))
    .values(undone_at=sa.bindparam("at"), undone_by=sa.bindparam("by"))
)


@functools.lru_cache(maxsize=32)
def _candidates_statement(count: int, with_record: bool = False) -> Any:
    """One statement for `count` blocking keys (`:k0`..., `:lim`): per key its first `:lim`
    sources (primary-key order), joined to their records; in key order. `with_record`: also
    the record of `:sid` itself, first (ord -1)."""
    branches = []
    if with_record:
        branches.append(sa.select(R.c.source_id, sa.literal(-1, sa.Integer).label("ord"))
                        .where(R.c.source_id == sa.bindparam("sid")))
    for n in range(count):
        per_key = (
            sa.select(B.c.source_id)
            .where(B.c.key == sa.bindparam(f"k{n}"))
            .order_by(B.c.source_id)
            .limit(sa.bindparam("lim", type_=sa.Integer))
        ).subquery()
        branches.append(sa.select(per_key.c.source_id, sa.literal(n, sa.Integer).label("ord")))
    hits = sa.union_all(*branches).subquery() if len(branches) > 1 else branches[0].subquery()
    return (
        sa.select(R.c.source_id, R.c.golden_id, R.c.features, hits.c.ord)
        .join(hits, hits.c.source_id == R.c.source_id)
        .order_by(hits.c.ord, R.c.source_id)
    )


class ConnectionSource(Protocol):
    """What the store's SQL unit of work offers: its one transaction's connection."""

    def connection(self, *, write: bool) -> Connection: ...


def _features(text: str) -> Features:
    return Features.from_json(orjson.loads(text))


def _link(row: Any) -> LinkRecord:
    return LinkRecord(
        row.id,
        row.source_id,
        row.golden_id,
        row.score,
        row.rule,
        row.created_at,
        row.created_by,
        row.undone_at,
        row.undone_by,
    )


def _review(row: Any) -> ReviewItem:
    return ReviewItem(
        row.id,
        row.source_id,
        row.golden_id,
        row.score,
        row.rule,
        orjson.loads(row.details),
        row.status,
        row.created_at,
        row.resolved_at,
        row.resolved_by,
    )


_LOCK_KEYS = sa.text(
    "SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:ks AS bigint[])) WITH ORDINALITY AS t(k, n) ORDER BY n"
)
"""Advisory locks of a new source's blocking keys, taken in the order given (sorted)."""


class SqlEmpiIndex:
    """See `ehr_store.empi.index.EmpiIndex`."""

    def __init__(self, source: ConnectionSource) -> None:
        self._source = source
        # sources `get_record` found without a record in this transaction: they have no
        # blocking keys and no links yet, so `put_record`/`undo_links` skip their DELETE/UPDATE
        self._absent: set[str] = set()

    def _conn(self, write: bool = False) -> Connection:
        return self._source.connection(write=write)

    def get_record(self, source_id: str) -> Candidate | None:
        row = self._conn().execute(_GET_RECORD, {"sid": source_id}).first()
        if row is None:
            self._absent.add(source_id)
            return None
        return Candidate(row.source_id, row.golden_id, _features(row.features))

    def put_record(self, source_id: str, golden_id: str, features: Features, keys: Sequence[str]) -> None:
        conn = self._conn(write=True)
        payload = orjson.dumps(features.to_json()).decode()
        now = datetime.now(UTC)
        conn.execute(
            _UPSERT_RECORD[conn.dialect.name],
            {"source_id": source_id, "golden_id": golden_id, "features": payload, "updated_at": now},
        )
        if source_id in self._absent:
            self._absent.discard(source_id)
        else:
            conn.execute(_DELETE_KEYS, {"sid": source_id})
        if keys and conn.dialect.name == "postgresql":
            conn.execute(_INSERT_KEYS_UNNEST, {"keys": list(dict.fromkeys(keys)), "sid": source_id})
        elif keys:
            conn.execute(_INSERT_KEYS, [{"key": k, "source_id": source_id} for k in dict.fromkeys(keys)])

    def set_golden(self, source_id: str, golden_id: str) -> None:
        params = {"sid": source_id, "gid": golden_id, "at": datetime.now(UTC)}
        if not self._conn(write=True).execute(_SET_GOLDEN, params).rowcount:
            raise KeyError(source_id)

    def candidates(self, keys: Sequence[str], *, limit_per_key: int) -> list[Candidate]:
        if not keys:
            return []
        return self._candidates(None, keys, limit_per_key)[1]

    def lock_keys(self, keys: Sequence[str]) -> None:
        """PostgreSQL: `pg_advisory_xact_lock` on a 64-bit hash of each key, in sorted order
        (units that lock several people's keys in one batch may still deadlock: PostgreSQL then
        aborts one, which ingestion writes again message by message). SQLite: nothing (its
        write units run one at a time)."""
        conn = self._conn(write=True)
        if conn.dialect.name != "postgresql" or not keys:
            return
        digests = {hashlib.blake2b(k.encode(), digest_size=8).digest() for k in keys}
        hashes = sorted(int.from_bytes(d, "big", signed=True) for d in digests)
        conn.execute(_LOCK_KEYS, {"ks": hashes})

    def lookup(
        self, source_id: str, keys: Sequence[str], *, limit_per_key: int
    ) -> tuple[Candidate | None, list[Candidate]]:
        record, found = self._candidates(source_id, keys, limit_per_key)
        if record is None:
            self._absent.add(source_id)
        return record, found

    def _candidates(
        self, source_id: str | None, keys: Sequence[str], limit_per_key: int
    ) -> tuple[Candidate | None, list[Candidate]]:
        """One round trip: the record of `source_id` (when given) and the candidates of `keys`."""
        unique = list(dict.fromkeys(keys))
        params: dict[str, Any] = {f"k{n}": key for n, key in enumerate(unique)}
        params["lim"] = limit_per_key
        if source_id is not None:
            params["sid"] = source_id
        record: Candidate | None = None
        found: dict[str, Candidate] = {}
        for r in self._conn().execute(_candidates_statement(len(unique), source_id is not None), params):
            if r.ord < 0:
                record = Candidate(r.source_id, r.golden_id, _features(r.features))
            elif r.source_id not in found:
                found[r.source_id] = Candidate(r.source_id, r.golden_id, _features(r.features))
        return record, list(found.values())

    def sources_of(self, golden_id: str) -> list[str]:
        return [r.source_id for r in self._conn().execute(_SOURCES_OF, {"gid": golden_id})]

    def add_link(
        self, source_id: str, golden_id: str, *, score: float | None, rule: str, at: datetime, by: str
    ) -> LinkRecord:
        values = {
            "source_id": source_id,
            "golden_id": golden_id,
            "score": score,
            "rule": rule,
            "created_at": at,
            "created_by": by,
        }
        new_id = self._conn(write=True).execute(_INSERT_LINK, values).scalar_one()
        return LinkRecord(int(new_id), source_id, golden_id, score, rule, at, by)

    def undo_links(self, source_id: str, *, at: datetime, by: str) -> int:
        if source_id in self._absent:  # no record, so never linked
            return 0
        params = {"sid": source_id, "at": at, "by": by}
        return int(self._conn(write=True).execute(_UNDO_LINKS, params).rowcount)

    def links(self, *, source_id: str | None = None, golden_id: str | None = None) -> list[LinkRecord]:
        stmt = sa.select(L).order_by(L.c.id)
        if source_id is not None:
            stmt = stmt.where(L.c.source_id == source_id)
        if golden_id is not None:
            stmt = stmt.where(L.c.golden_id == golden_id)
        return [_link(r) for r in self._conn().execute(stmt)]

    def add_review(
        self,
        source_id: str,
        golden_id: str,
        *,
        score: float,
        rule: str,
        details: dict[str, Any],
        at: datetime,
    ) -> ReviewItem:
        values = {
            "source_id": source_id,
            "golden_id": golden_id,
            "score": score,
            "rule": rule,
            "details": orjson.dumps(details).decode(),
            "status": "open",
            "created_at": at,
        }
        new_id = self._conn(write=True).execute(sa.insert(Q).values(**values).returning(Q.c.id)).scalar_one()
        return ReviewItem(int(new_id), source_id, golden_id, score, rule, details, "open", at)

    def reviews(
        self,
        *,
        status: ReviewStatus | None = "open",
        limit: int = 50,
        offset: int = 0,
        source_id: str | None = None,
    ) -> list[ReviewItem]:
        stmt = sa.select(Q).order_by(Q.c.id).limit(limit).offset(offset)
        if status is not None:
            stmt = stmt.where(Q.c.status == status)
        if source_id is not None:
            stmt = stmt.where(Q.c.source_id == source_id)
        return [_review(r) for r in self._conn().execute(stmt)]

    def get_review(self, review_id: int) -> ReviewItem | None:
        row = self._conn().execute(sa.select(Q).where(Q.c.id == review_id)).first()
        return None if row is None else _review(row)

    def resolve_review(self, review_id: int, *, status: ReviewStatus, at: datetime, by: str) -> None:
        stmt = sa.update(Q).where(Q.c.id == review_id).values(status=status, resolved_at=at, resolved_by=by)
        self._conn(write=True).execute(stmt)
