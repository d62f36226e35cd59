"""Index entry types: what extraction produces and the index tables / memory index store.

One NamedTuple per parameter type (FHIR R4B search §3.1.1.5), each carrying the parameter
code; `IndexEntries` groups all entries of one resource.

May import: the standard library.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

__all__ = [
    "COLUMN_LIMITS",
    "DateEntry",
    "IndexEntries",
    "NumberEntry",
    "QuantityEntry",
    "ReferenceEntry",
    "StringEntry",
    "TokenEntry",
    "UriEntry",
    "fit",
    "fit_entry",
]

DEFAULT_LIMIT = 255
COLUMN_LIMITS = {"url": 512, "uri": 512, "text": 100_000, "target_type": 64, "target_id": 64}
"""Sizes of the index columns other than 255 characters; longer values are cut to them
(in SQL and in memory alike, and search values too, so both stores answer the same)."""


def fit(field: str, value: str) -> str:
    """`value` cut to the size of index column `field`."""
    limit = COLUMN_LIMITS.get(field, DEFAULT_LIMIT)
    return value if len(value) <= limit else value[:limit]


def fit_entry(entry: Any) -> Any:
    """An entry with every over-long string field cut to its column size."""
    changes = {k: fit(k, v) for k, v in entry._asdict().items() if type(v) is str and len(v) > 64}
    return entry._replace(**changes) if changes else entry


class TokenEntry(NamedTuple):
    param: str
    system: str | None
    code: str | None
    text: str | None  # normalised display/text for `:text`


class StringEntry(NamedTuple):
    param: str
    value: str  # normalised (casefold, accents removed)
    exact: str  # as written, for `:exact`


class DateEntry(NamedTuple):
    param: str
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, inclusive


class ReferenceEntry(NamedTuple):
    param: str
    target_type: str | None
    target_id: str | None
    url: str | None  # absolute or canonical url
    identifier_system: str | None
    identifier_value: str | None


class QuantityEntry(NamedTuple):
    param: str
    value: Decimal
    low: Decimal
    high: Decimal
    system: str | None
    code: str | None
    unit: str | None


class NumberEntry(NamedTuple):
    param: str
    value: Decimal
    low: Decimal
    high: Decimal


class UriEntry(NamedTuple):
    param: str
    uri: str


@dataclass(slots=True)
class IndexEntries:
    """All index entries of one resource, by parameter type."""

    token: list[TokenEntry] = field(default_factory=list)
    string: list[StringEntry] = field(default_factory=list)
    date: list[DateEntry] = field(default_factory=list)
    reference: list[ReferenceEntry] = field(default_factory=list)
    quantity: list[QuantityEntry] = field(default_factory=list)
    number: list[NumberEntry] = field(default_factory=list)
    uri: list[UriEntry] = field(default_factory=list)

    def params(self) -> set[str]:
        """Codes of the parameters that have at least one entry."""
        return {e.param for kind in self.kinds() for e in kind[1]}

    def kinds(self) -> Iterator[tuple[str, list[Any]]]:
        yield from (
            ("token", self.token),
            ("string", self.string),
            ("date", self.date),
            ("reference", self.reference),
            ("quantity", self.quantity),
            ("number", self.number),
            ("uri", self.uri),
        )
