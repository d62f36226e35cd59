"""In-process matching of index entries against query values: the same semantics as
`ehr_store.search.sql_conditions`, for the memory store (FHIR R4B search §3.1.1.5).

May import: the standard library, `ehr_store.search.{extract,query,sql_conditions}`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ehr_store.search.extract import (
    DateEntry,
    NumberEntry,
    QuantityEntry,
    ReferenceEntry,
    StringEntry,
    TokenEntry,
    UriEntry,
)
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
from ehr_store.search.sql_conditions import approx_date_window, number_window, uri_prefixes

__all__ = ["date_matches", "entry_matches", "sort_value"]


def entry_matches(entry: Any, modifier: str | None, value: Value) -> bool:
    """Does one index entry match one query value (under `modifier`)?"""
    if isinstance(value, CodeSetValue):
        return isinstance(entry, TokenEntry) and (entry.system, entry.code) in value.codes
    if isinstance(value, TokenValue):
        if isinstance(entry, ReferenceEntry):
            return _token(entry.identifier_system, entry.identifier_value, value)
        if not isinstance(entry, TokenEntry):
            return False
        if value.text is not None:
            return entry.text is not None and value.text in entry.text
        return _token(entry.system, entry.code, value)
    if isinstance(value, StringValue) and isinstance(entry, StringEntry):
        if modifier == "exact":
            return entry.exact == value.value
        if modifier == "contains":
            return value.value in entry.value
        return entry.value.startswith(value.value)
    if isinstance(value, UriValue) and isinstance(entry, UriEntry):
        if modifier == "below":
            return entry.uri.startswith(value.uri)
        if modifier == "above":
            return entry.uri in uri_prefixes(value.uri)
        return entry.uri == value.uri
    if isinstance(value, ReferenceValue) and isinstance(entry, ReferenceEntry):
        return _reference(entry, value)
    if isinstance(value, DateValue) and isinstance(entry, DateEntry):
        return date_matches(entry.start, entry.end, value)
    if isinstance(value, NumberValue | QuantityValue) and isinstance(entry, NumberEntry | QuantityEntry):
        if not _number(entry.value, entry.low, entry.high, value):
            return False
        if isinstance(value, QuantityValue) and isinstance(entry, QuantityEntry):
            if value.system and entry.system != value.system:
                return False
            if value.code and value.code not in (entry.code, entry.unit):
                return False
        return True
    return False


def _token(system: str | None, code: str | None, value: TokenValue) -> bool:
    if value.code is None:
        return system == value.system
    if code != value.code:
        return False
    if value.system == "":
        return system is None
    return value.system is None or system == value.system


def _reference(entry: ReferenceEntry, value: ReferenceValue) -> bool:
    if value.target_id is None:
        return entry.url is not None and entry.url == value.url
    hit = entry.target_id == value.target_id and (
        value.target_type is None or entry.target_type == value.target_type
    )
    return hit or (value.url is not None and entry.url == value.url)


def date_matches(rs: datetime, re: datetime, value: DateValue) -> bool:
    """Prefix comparison of a stored range [rs, re] with the value's range (see sql_conditions)."""
    ps, pe, prefix = value.start, value.end, value.prefix
    eq = rs >= ps and re <= pe
    if prefix == "eq":
        return eq
    if prefix == "ne":
        return not eq
    if prefix == "gt":
        return re > pe
    if prefix == "lt":
        return rs < ps
    if prefix == "ge":
        return re > pe or eq
    if prefix == "le":
        return rs < ps or eq
    if prefix == "sa":
        return rs > pe
    if prefix == "eb":
        return re < ps
    low, high = approx_date_window(value)
    return rs <= high and re >= low


def _number(x: Any, low: Any, high: Any, value: NumberValue | QuantityValue) -> bool:
    p, prefix = value.value, value.prefix
    if prefix == "eq":
        return bool(value.low <= low and high <= value.high)
    if prefix == "ne":
        return not (value.low <= low and high <= value.high)
    if prefix in ("gt", "sa"):
        return bool(x > p)
    if prefix in ("lt", "eb"):
        return bool(x < p)
    if prefix == "ge":
        return bool(x >= p)
    if prefix == "le":
        return bool(x <= p)
    low, high = number_window(value)
    return bool(low <= x <= high)


def sort_value(entries: list[Any], kind: str, descending: bool) -> Any:
    """The sort key of a resource for one parameter: min (ascending) or max (descending)."""
    if not entries:
        return None
    if kind == "date":
        return max(e.end for e in entries) if descending else min(e.start for e in entries)
    column = {
        "token": "code",
        "string": "value",
        "reference": "target_id",
        "quantity": "value",
        "number": "value",
        "uri": "uri",
    }[kind]
    values = [getattr(e, column) for e in entries if getattr(e, column) is not None]
    if not values:
        return None
    return max(values) if descending else min(values)
