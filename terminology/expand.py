"""ValueSet expansion: `compose.include`/`exclude` with concepts, filters and value set refs.

Supports the FHIR R4B filter operators `=`, `is-a`, `descendent-of`, `is-not-a`,
`generalizes`, `in`, `not-in`, `regex`, `exists` (FHIR R4B ValueSet §4.9.5 and
CodeSystem filter-operator codes), and implicit value sets `<system>?fhir_vs` (all codes)
and `<system>?fhir_vs=isa/<code>` (the code and its descendants). Results are cached in
the index per (url, version).

May import: the standard library, `ehr_store` (errors), `terminology.codesystem`,
`terminology.index`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ehr_store import InvalidInput, NotFound, NotSupported, TooCostly
from terminology.codesystem import CodeSystemIndex, Concept
from terminology.index import TerminologyIndex

Json = dict[str, Any]
MAX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class Item:
    """One code of an expansion, with the concept it came from when known."""

    system: str
    version: str | None
    code: str
    display: str | None
    concept: Concept | None

    def display_in(self, language: str | None) -> str | None:
        """Display for `language` (designation when there is one)."""
        return self.concept.display_in(language) if self.concept else self.display


def implicit_compose(url: str) -> Json | None:
    """Compose of an implicit value set URL `<system>?fhir_vs[=isa/<code>]`, else None."""
    if "?fhir_vs" not in url:
        return None
    system, _, query = url.partition("?")
    include: Json = {"system": system}
    value = query.partition("=")[2]
    if value.startswith("isa/"):
        include["filter"] = [{"property": "concept", "op": "is-a", "value": value[4:]}]
    elif value:
        raise NotSupported(f"implicit value set form {query!r} is not supported")
    return {"include": [include]}


def expand_url(index: TerminologyIndex, url: str, version: str | None = None) -> tuple[Json, list[Item]]:
    """(ValueSet resource, items) of a value set by canonical URL, cached.

    Raises: NotFound (unknown value set or code system), NotSupported, TooCostly.
    """
    key = (url, version)
    cached = index.expansions.get(key)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    compose = implicit_compose(url)
    if compose is not None:
        resource: Json = {"resourceType": "ValueSet", "url": url, "status": "active", "compose": compose}
    else:
        found = index.valueset(url, version)
        if found is None:
            raise NotFound(f"ValueSet {url} is not known", expression=("url",))
        resource = found
    result = (resource, expand_resource(index, resource))
    index.expansions[key] = result
    return result


def expand_resource(index: TerminologyIndex, resource: Json, depth: int = 0) -> list[Item]:
    """Items of a ValueSet resource (its `compose`; a stored `expansion` when it has no compose)."""
    if depth > MAX_DEPTH:
        raise InvalidInput("ValueSet references nest too deep (a cycle?)")
    compose = resource.get("compose")
    if compose is None:
        contains = resource.get("expansion", {}).get("contains", [])
        return [Item(c["system"], c.get("version"), c["code"], c.get("display"), None) for c in contains]
    items: dict[tuple[str, str], Item] = {}
    for include in compose.get("include", []):
        for item in _include(index, include, depth):
            items.setdefault((item.system, item.code), item)
    for exclude in compose.get("exclude", []):
        for item in _include(index, exclude, depth):
            items.pop((item.system, item.code), None)
    return list(items.values())


def _include(index: TerminologyIndex, include: Json, depth: int) -> list[Item]:
    refs = include.get("valueSet", [])
    ref_items: list[list[Item]] = [expand_url(index, url)[1] for url in refs]
    system = include.get("system")
    if system is None:
        if not ref_items:
            raise InvalidInput("ValueSet.compose.include needs a system or a valueSet")
        merged: dict[tuple[str, str], Item] = {}
        for part in ref_items:
            for item in part:
                merged.setdefault((item.system, item.code), item)
        return list(merged.values())
    items = _from_system(index, system, include)
    for part in ref_items:
        keep = {(i.system, i.code) for i in part}
        items = [i for i in items if (i.system, i.code) in keep]
    return items


def _from_system(index: TerminologyIndex, system: str, include: Json) -> list[Item]:
    cs = index.codesystem(system, include.get("version"))
    listed = include.get("concept")
    if listed:
        out = []
        for ref in listed:
            found = index.resolve(system, ref["code"], include.get("version"))
            if found is not None:
                out.append(
                    Item(
                        system, found.version, found.code, ref.get("display") or found.display, found.concept
                    )
                )
            elif cs is None:
                out.append(Item(system, include.get("version"), ref["code"], ref.get("display"), None))
        return out
    if cs is None or cs.content == "not-present":
        if index.knows_system(system):
            raise TooCostly(f"{system} cannot be enumerated; list its codes in the ValueSet")
        raise NotFound(f"CodeSystem {system} is not known", expression=("ValueSet.compose.include.system",))
    codes: list[str] = list(cs.concepts)
    for flt in include.get("filter", []):
        codes = _apply_filter(cs, codes, flt)
    return [Item(cs.url, cs.version, code, cs.concepts[code].display, cs.concepts[code]) for code in codes]


def _apply_filter(cs: CodeSystemIndex, codes: list[str], flt: Json) -> list[str]:
    prop, op, value = flt.get("property"), flt.get("op"), str(flt.get("value", ""))
    if op in ("is-a", "descendent-of", "is-not-a", "generalizes") and prop == "concept":
        root = cs.find(value)
        if root is None:
            return [] if op != "is-not-a" else codes
        below = set(cs.descendants(root.code))
        if op == "is-a":
            below.add(root.code)
        elif op == "generalizes":
            below = cs.ancestors(root.code) | {root.code}
        elif op == "is-not-a":
            below = set(codes) - below - {root.code}
        return [c for c in codes if c in below]
    if op == "regex":
        pattern = re.compile(value)
        if prop == "code" or prop == "concept":
            return [c for c in codes if pattern.fullmatch(c)]
        return [
            c
            for c in codes
            if any(pattern.fullmatch(str(v)) for v in cs.concepts[c].property_values(str(prop)))
        ]
    if op in ("=", "in", "not-in"):
        wanted = {value} if op == "=" else {v.strip() for v in value.split(",")}
        if prop in ("concept", "code"):
            hit = [c for c in codes if c in wanted]
        else:
            hit = [c for c in codes if wanted & {str(v) for v in cs.concepts[c].property_values(str(prop))}]
        return hit if op != "not-in" else [c for c in codes if c not in set(hit)]
    if op == "exists":
        want = value.lower() == "true"
        return [c for c in codes if bool(cs.concepts[c].property_values(str(prop))) == want]
    raise NotSupported(f"ValueSet filter op {op!r} on {prop!r} is not supported", expression=("filter",))


def valueset_codes(
    index: TerminologyIndex, url: str, version: str | None = None
) -> frozenset[tuple[str, str]]:
    """(system, code) pairs of a value set, for the `:in`/`:not-in` token modifiers of
    resource search (FHIR R4B search §3.1.1.5.5). Raises: NotFound, NotSupported, TooCostly."""
    return frozenset((item.system, item.code) for item in expand_url(index, url, version)[1])


def codes_below(index: TerminologyIndex, system: str, code: str) -> frozenset[str]:
    """`code` and every code it subsumes in `system`, for the `:below` token modifier
    (FHIR R4B search §3.1.1.5.5). Raises: NotFound (unknown system)."""
    cs = index.codesystem(system)
    if cs is None:
        raise NotFound(f"CodeSystem {system} is not known", expression=("system",))
    concept = cs.find(code)
    return frozenset((concept.code, *cs.descendants(concept.code))) if concept else frozenset()


def codes_above(index: TerminologyIndex, system: str, code: str) -> frozenset[str]:
    """`code` and every code that subsumes it in `system`, for the `:above` token modifier
    (FHIR R4B search §3.1.1.5.5). Raises: NotFound (unknown system)."""
    cs = index.codesystem(system)
    if cs is None:
        raise NotFound(f"CodeSystem {system} is not known", expression=("system",))
    concept = cs.find(code)
    return frozenset((concept.code, *cs.ancestors(concept.code))) if concept else frozenset()
