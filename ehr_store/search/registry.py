"""Search parameter registry: the FHIR R4B SearchParameter definitions by resource type and code.

Loads `data/search-parameters.json` (a Bundle of SearchParameter resources with FHIRPath
`expression`, `type`, `target`, `base`) once, and compiles each parameter's expression for
its base type with `ehr_store.search.fhirpath` (FHIR R4B search §3.1.1.4, SearchParameter §2.1.x).

The registry also carries the zone used to read dates and times sent without an offset
(`Asia/Shanghai` by default), so extraction and query parsing agree.

May import: the standard library, `ehr_store.search.fhirpath`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from ehr_store.search.fhirpath import CompiledPath, compile_expression

__all__ = ["COMMON_TYPES", "Registry", "SearchParamDef", "get_registry"]

COMMON_TYPES = ("Resource", "DomainResource")
INDEXED_TYPES = frozenset({"token", "string", "date", "reference", "quantity", "number", "uri"})
_SPECIAL_CODES = frozenset({"_id", "_lastUpdated"})
"""Parameters answered from the `resource` row itself, not from index tables."""


@dataclass(frozen=True, slots=True)
class SearchParamDef:
    """One search parameter as it applies to one resource type.

    `type`: token | string | date | reference | quantity | number | uri | composite | special.
    `expression`: the part of the FHIRPath expression for this resource type (None if none).
    `targets`: resource types a reference parameter may point to.
    `indexed`: True when values are extracted into the index tables.
    """

    code: str
    type: str
    url: str
    resource_type: str
    expression: str | None
    targets: tuple[str, ...] = ()
    documentation: str = ""
    path: CompiledPath | None = field(default=None, compare=False, repr=False)

    @property
    def indexed(self) -> bool:
        return self.path is not None and self.type in INDEXED_TYPES and self.code not in _SPECIAL_CODES


class Registry:
    """Search parameters per resource type (including the common `_id`, `_lastUpdated`, `_tag`,
    `_profile`, `_security`, `_source`), with compiled extraction paths.

    `tz` is the zone for date/time values without an offset.
    """

    def __init__(self, bundle: dict[str, Any], *, timezone: str = "Asia/Shanghai") -> None:
        self.tz = ZoneInfo(timezone)
        self._definitions: list[dict[str, Any]] = [e["resource"] for e in bundle.get("entry", [])]
        self._by_type: dict[str, dict[str, SearchParamDef]] = {}
        self._common: dict[str, dict[str, Any]] = {}
        self._plans: dict[str, tuple[dict[str, tuple[SearchParamDef, ...]], tuple[SearchParamDef, ...]]] = {}
        types: set[str] = set()
        for sp in self._definitions:
            for base in sp.get("base", []):
                if base in COMMON_TYPES:
                    self._common[sp["code"]] = sp
                else:
                    types.add(base)
        self.resource_types: frozenset[str] = frozenset(types)

    def params_for(self, resource_type: str) -> dict[str, SearchParamDef]:
        """The parameters this server supports on `resource_type`, by code (compiled on first use):
        the common `_id`, `_lastUpdated`, `_tag`, `_profile`, `_security`, `_source` and the
        type's token/string/date/reference/quantity/number/uri parameters (composite and special
        ones are not supported and not listed). Only the common ones for an unknown type.
        """
        found = self._by_type.get(resource_type)
        if found is None:
            found = self._build(resource_type)
            self._by_type[resource_type] = found
        return found

    def extraction_plan(
        self, resource_type: str
    ) -> tuple[dict[str, tuple[SearchParamDef, ...]], tuple[SearchParamDef, ...]]:
        """Indexed parameters of a type by the top-level JSON key they start from, plus those
        to evaluate always (no single first key). Used by `extract_index` to skip absent elements."""
        plan = self._plans.get(resource_type)
        if plan is None:
            by_key: dict[str, list[SearchParamDef]] = {}
            always: list[SearchParamDef] = []
            for sp in self.params_for(resource_type).values():
                if sp.path is None or not sp.indexed:
                    continue
                if not sp.path.first_keys:
                    always.append(sp)
                for key in sp.path.first_keys:
                    by_key.setdefault(key, []).append(sp)
            plan = ({k: tuple(v) for k, v in by_key.items()}, tuple(always))
            self._plans[resource_type] = plan
        return plan

    def get(self, resource_type: str, code: str) -> SearchParamDef | None:
        """The parameter `code` on `resource_type`, or None when not defined."""
        return self.params_for(resource_type).get(code)

    def is_known_type(self, resource_type: str) -> bool:
        return resource_type in self.resource_types

    def _build(self, resource_type: str) -> dict[str, SearchParamDef]:
        out: dict[str, SearchParamDef] = {}
        for code, sp in self._common.items():
            if code in ("_text", "_content", "_query"):
                continue
            out[code] = _make(sp, resource_type, self._definitions)
        for sp in self._definitions:
            if resource_type in sp.get("base", ()) and sp["type"] in INDEXED_TYPES:
                made = _make(sp, resource_type, self._definitions)
                if made.path is not None:  # composite, special and expression-less ones are not served
                    out[sp["code"]] = made
        return out


def _own_expression(expression: str | None, resource_type: str) -> str | None:
    """The `|`-separated parts of a multi-type expression that start with `resource_type`."""
    if not expression:
        return None
    parts = _split_union(expression)
    mine = []
    for part in parts:
        head = part.strip().lstrip("(").split(".", 1)[0]
        if head in (resource_type, *COMMON_TYPES):
            mine.append(part.strip())
    return " | ".join(mine) if mine else None


def _split_union(expression: str) -> list[str]:
    parts, depth, quote, start = [], 0, False, 0
    for i, ch in enumerate(expression):
        if ch == "'":
            quote = not quote
        elif quote:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(expression[start:i])
            start = i + 1
    parts.append(expression[start:])
    return parts


def _make(sp: dict[str, Any], resource_type: str, _defs: list[dict[str, Any]]) -> SearchParamDef:
    expression = _own_expression(sp.get("expression"), resource_type)
    path = None
    if expression and sp["type"] in INDEXED_TYPES:
        path = compile_expression(expression, resource_type)
    return SearchParamDef(
        code=sp["code"],
        type=sp["type"],
        url=sp["url"],
        resource_type=resource_type,
        expression=expression,
        targets=tuple(sp.get("target", ())),
        documentation=sp.get("description", "") or f"{sp['name']} ({sp['type']})",
        path=path,
    )


@cache
def _bundle() -> dict[str, Any]:
    text = resources.files("ehr_store.search").joinpath("data/search-parameters.json").read_text("utf-8")
    result: dict[str, Any] = json.loads(text)
    return result


@cache
def get_registry(timezone: str = "Asia/Shanghai") -> Registry:
    """The shared registry for a default zone (cached; thread-safe after first use per type).

    Raises: zoneinfo.ZoneInfoNotFoundError for an unknown zone name.
    """
    registry = Registry(_bundle(), timezone=timezone)
    for resource_type in sorted(registry.resource_types):
        registry.extraction_plan(resource_type)
    return registry
