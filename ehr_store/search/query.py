"""Search query model: what `parse_search` produces and the executors consume.

A `SearchQuery` is an AND of criteria; each criterion is a `Filter` (one parameter, an OR of
values), a `Chain` (a reference parameter whose targets match an inner criterion) or a
`Has` (reverse chain). Values are already parsed into ranges and parts
(FHIR R4B search §3.1.1.4-§3.1.1.6).

May import: the standard library, `ehr_store.errors`, `ehr_store.search.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from ehr_store.errors import Issue
from ehr_store.search.registry import SearchParamDef

__all__ = [
    "Chain",
    "CodeSetValue",
    "Criterion",
    "DateValue",
    "Filter",
    "Has",
    "Include",
    "NumberValue",
    "Prefix",
    "QuantityValue",
    "ReferenceValue",
    "SearchQuery",
    "SortKey",
    "StringValue",
    "TokenValue",
    "UriValue",
]

Prefix = Literal["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]
TotalMode = Literal["none", "accurate", "estimate"]


@dataclass(frozen=True, slots=True)
class TokenValue:
    """`code`, `system|code`, `|code` (no system: `system` "" ), `system|`, or `:text` text."""

    system: str | None  # None: any system; "": no system
    code: str | None  # None: any code (`system|`)
    text: str | None = None  # normalised, for `:text`


@dataclass(frozen=True, slots=True)
class StringValue:
    value: str  # normalised for the default and `:contains`; as sent for `:exact`


@dataclass(frozen=True, slots=True)
class DateValue:
    prefix: Prefix
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, inclusive


@dataclass(frozen=True, slots=True)
class NumberValue:
    prefix: Prefix
    value: Decimal
    low: Decimal
    high: Decimal


@dataclass(frozen=True, slots=True)
class QuantityValue:
    prefix: Prefix
    value: Decimal
    low: Decimal
    high: Decimal
    system: str | None
    code: str | None  # matches code or unit


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    """`id` (type None), `Type/id`, an absolute url, or (for `:identifier`) a token."""

    target_type: str | None
    target_id: str | None
    url: str | None = None
    identifier: TokenValue | None = None


@dataclass(frozen=True, slots=True)
class UriValue:
    uri: str


@dataclass(frozen=True, slots=True)
class CodeSetValue:
    """A token value naming a set of codes: `:in`/`:not-in` a ValueSet (`value` its canonical
    url, `system` None) or `:below`/`:above` a code of a hierarchical `system`
    (FHIR R4B search §3.1.1.5.5). `key` and `codes` are filled in before execution
    (`ehr_store.search.code_sets.bind_code_sets`); equality and hashing use the key."""

    kind: Literal["in", "below", "above"]
    system: str | None
    value: str
    key: str | None = None
    codes: frozenset[tuple[str, str]] = field(default=frozenset(), compare=False, repr=False)


Value = (
    CodeSetValue
    | TokenValue
    | StringValue
    | DateValue
    | NumberValue
    | QuantityValue
    | ReferenceValue
    | UriValue
    | bool
)


@dataclass(frozen=True, slots=True)
class Filter:
    """One parameter on `resource_type` (None: any type, for system search); values are OR-ed.

    `modifier`: exact, contains, missing (values are bools), not, text, identifier, below,
    above, in, not-in, or None. `param.code` `_id` / `_lastUpdated` read the resource row.
    """

    resource_type: str | None
    param: SearchParamDef
    modifier: str | None
    values: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Chain:
    """`param[:Type].inner`: a reference whose target (of one of the types) matches."""

    resource_type: str | None
    param: SearchParamDef
    targets: tuple[tuple[str, Criterion], ...]  # (target type, criterion on that type)


@dataclass(frozen=True, slots=True)
class Has:
    """`_has:Source:ref:inner`: some `Source` referring to the resource via `ref` matches `inner`."""

    resource_type: str | None
    source_type: str
    ref_param: SearchParamDef
    inner: Criterion


Criterion = Filter | Chain | Has


@dataclass(frozen=True, slots=True)
class SortKey:
    param: SearchParamDef  # `_id` and `_lastUpdated` included
    descending: bool


@dataclass(frozen=True, slots=True)
class Include:
    """`_include=Source:param[:Target]` or `_revinclude=...`; `param` None for `*`."""

    source_type: str
    param: str | None
    target_type: str | None
    reverse: bool
    iterate: bool


@dataclass(slots=True)
class SearchQuery:
    """A parsed search. `types` are the resource types searched (one for a type search;
    the `_type` list or all types for a system search)."""

    resource_type: str | None
    types: tuple[str, ...]
    criteria: list[Criterion] = field(default_factory=list)
    sort: list[SortKey] = field(default_factory=list)
    count: int | None = None
    offset: int = 0
    total: TotalMode = "none"
    summary: str | None = None
    elements: tuple[str, ...] | None = None
    includes: list[Include] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)

    @property
    def count_only(self) -> bool:
        """`_summary=count`: only the total is wanted."""
        return self.summary == "count"
