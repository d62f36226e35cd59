"""SQL conditions for one search value on an index table (FHIR R4B search §3.1.1.5).

Date semantics compare the resource's range [rs, re] with the value's range [ps, pe]:
eq: rs ≥ ps ∧ re ≤ pe; ne: ¬eq; gt: re > pe; lt: rs < ps; ge: gt ∨ eq; le: lt ∨ eq;
sa: rs > pe; eb: re < ps; ap: the ranges overlap once the value's range is widened by 10 %
of its distance from now. Numbers and quantities: eq means the stored value lies in the
value's implicit range by significant figures contains the stored value's range; ap within ±10 %.
Redundant conjuncts are added where they let an index bound the scan.

May import: sqlalchemy, the standard library, `ehr_store.search.{code_sets,query,tables,values}`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from ehr_store.search.code_sets import code_set_table
from ehr_store.search.query import (
    CodeSetValue,
    DateValue,
    NumberValue,
    QuantityValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    UriValue,
    Value,
)
from ehr_store.search.values import MAX_DT, MIN_DT

__all__ = ["approx_date_window", "date_condition", "uri_prefixes", "value_condition"]

Cond = ColumnElement[bool]


def _cond(expression: Any) -> Cond:
    """Type a comparison built on untyped (aliased) columns."""
    return cast(Cond, expression)


def value_condition(
    table: sa.Table | Any, kind: str, modifier: str | None, value: Value, dialect: str
) -> Cond:
    """Condition on a row of the `kind` index table (`table` may be an alias) for one value."""
    c = table.c
    if isinstance(value, CodeSetValue):  # membership: a semi-join on the set's primary key
        s = code_set_table.alias()
        return sa.exists().where(s.c.set_key == value.key, s.c.system == c.system, s.c.code == c.code)
    if isinstance(value, TokenValue):
        if kind == "reference":  # :identifier
            return _token(c.identifier_system, c.identifier_value, value)
        if value.text is not None:
            return c.text.like(f"%{_like_escape(value.text)}%", escape="\\")
        return _token(c.system, c.code, value)
    if isinstance(value, StringValue):
        if modifier == "exact":
            return c.exact == value.value
        if modifier == "contains":
            return c.value.like(f"%{_like_escape(value.value)}%", escape="\\")
        return starts_with(c.value, value.value, dialect)
    if isinstance(value, UriValue):
        if modifier == "below":
            return c.uri.like(f"{_like_escape(value.uri)}%", escape="\\")
        if modifier == "above":
            return c.uri.in_(uri_prefixes(value.uri))
        return c.uri == value.uri
    if isinstance(value, ReferenceValue):
        return _reference(c, value)
    if isinstance(value, DateValue):
        return date_condition(c.start, c.end, value)
    if isinstance(value, NumberValue | QuantityValue):
        cond = number_condition(c.value, c.low, c.high, value)
        if isinstance(value, QuantityValue):
            if value.system:
                cond = sa.and_(cond, c.system == value.system)
            if value.code:
                cond = sa.and_(cond, sa.or_(c.code == value.code, c.unit == value.code))
        return cond
    raise TypeError(f"no condition for {value!r}")


def _token(system_col: Any, code_col: Any, value: TokenValue) -> Cond:
    if value.code is None:
        return _cond(system_col == value.system)
    cond: Cond = code_col == value.code
    if value.system == "":
        return sa.and_(cond, system_col.is_(None))
    if value.system is not None:
        return sa.and_(cond, system_col == value.system)
    return cond


def _reference(c: Any, value: ReferenceValue) -> Cond:
    if value.target_id is None:
        return _cond(c.url == value.url)
    cond: Cond = c.target_id == value.target_id
    if value.target_type is not None:
        cond = sa.and_(cond, c.target_type == value.target_type)
    if value.url is not None:
        cond = sa.or_(cond, c.url == value.url)
    return cond


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def starts_with(column: Any, prefix: str, dialect: str) -> Cond:
    """`column` starts with `prefix`: a range on SQLite (binary collation uses the index),
    LIKE elsewhere (PostgreSQL's `text_pattern_ops` index serves it)."""
    if dialect == "sqlite":
        if not prefix:
            return sa.true()
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        return sa.and_(column >= prefix, column < upper)
    return _cond(column.like(f"{_like_escape(prefix)}%", escape="\\"))


def uri_prefixes(uri: str) -> list[str]:
    """`uri` and each of its ancestors at `/` boundaries (for `:above`)."""
    out = [uri]
    while "/" in uri.rstrip("/"):
        uri = uri.rstrip("/").rsplit("/", 1)[0]
        if uri.endswith(":/") or uri.endswith(":"):
            break
        out.append(uri)
    return out


def approx_date_window(value: DateValue) -> tuple[datetime, datetime]:
    """The value's range widened by 10 % of its distance from now (at least one day)."""
    now = datetime.now(UTC)
    gap = abs(now - value.start) if value.start > now else abs(now - value.end)
    delta = max(gap / 10, timedelta(days=1))
    low = value.start - delta if value.start - MIN_DT > delta else MIN_DT
    high = value.end + delta if MAX_DT - value.end > delta else MAX_DT
    return low, high


def date_condition(rs: Any, re: Any, value: DateValue) -> Cond:
    """The prefix comparison of a stored range [rs, re] with the value's range."""
    ps, pe, prefix = value.start, value.end, value.prefix
    if prefix == "eq":
        return sa.and_(rs >= ps, re <= pe)
    if prefix == "ne":
        return sa.or_(rs < ps, re > pe)
    if prefix == "gt":
        return _cond(re > pe)
    if prefix == "lt":
        return _cond(rs < ps)
    if prefix == "ge":
        return sa.and_(re >= ps, sa.or_(re > pe, rs >= ps))
    if prefix == "le":
        return sa.and_(rs <= pe, sa.or_(rs < ps, re <= pe))
    if prefix == "sa":
        return _cond(rs > pe)
    if prefix == "eb":
        return _cond(re < ps)
    low, high = approx_date_window(value)
    return sa.and_(rs <= high, re >= low)


def number_window(value: NumberValue | QuantityValue) -> tuple[Decimal, Decimal]:
    """`ap`: ±10 % of the value, and at least its implicit range."""
    spread = abs(value.value) / 10
    return min(value.value - spread, value.low), max(value.value + spread, value.high)


def number_condition(x: Any, low: Any, high: Any, value: NumberValue | QuantityValue) -> Cond:
    """The prefix comparison of a stored number `x` (implicit range [low, high]) with the value:
    eq when the value's range contains the stored range (`1.5` finds `1.50`, `1.500` does not)."""
    p, prefix = value.value, value.prefix
    if prefix == "eq":
        return sa.and_(x >= value.low, x <= value.high, low >= value.low, high <= value.high)
    if prefix == "ne":
        return sa.or_(low < value.low, high > value.high)
    if prefix in ("gt", "sa"):
        return _cond(x > p)
    if prefix in ("lt", "eb"):
        return _cond(x < p)
    if prefix == "ge":
        return _cond(x >= p)
    if prefix == "le":
        return _cond(x <= p)
    low, high = number_window(value)
    return sa.and_(x >= low, x <= high)
