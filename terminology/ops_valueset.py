"""ValueSet and ConceptMap operations: `$expand`, `$validate-code`, `$translate`.

FHIR R4B ValueSet §4.9.17-18 and ConceptMap §4.10.9. Pure functions over a
`TerminologyIndex`; input a Parameters resource or `parameters.In`.

May import: the standard library, `ehr_store` (errors), `terminology.canonical`,
`terminology.conceptmap`, `terminology.expand`, `terminology.icd10`, `terminology.index`,
`terminology.ops_codesystem`, `terminology.parameters`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from ehr_store import InvalidInput, NotFound, TooCostly
from terminology import icd10
from terminology.canonical import ICD10, ICD10_CN
from terminology.conceptmap import ConceptMapIndex, Target
from terminology.expand import Item, _apply_filter, expand_resource, expand_url, implicit_compose
from terminology.index import TerminologyIndex
from terminology.ops_codesystem import as_in, coding_in
from terminology.parameters import In, out, p, part

Json = dict[str, Any]
MAX_UNPAGED = 20000
ICD10_SYSTEMS = (ICD10, ICD10_CN)


def _valueset_and_items(index: TerminologyIndex, inp: In, resource_id: str | None) -> tuple[Json, list[Item]]:
    inline = inp.mapping("valueSet")
    if inline is not None:
        resource = dict(inline)
        return resource, expand_resource(index, resource)
    url = inp.text("url")
    if resource_id is not None:
        url = next(
            (u for u, vs in index.value_sets.items() for r in vs.values() if r.get("id") == resource_id), None
        )
        if url is None:
            raise NotFound(f"ValueSet/{resource_id} is not known")
    if not url:
        raise InvalidInput("$expand needs url or valueSet", expression=("url",))
    return expand_url(index, url, inp.text("valueSetVersion"))


def expand(index: TerminologyIndex, request: Json | In | None, *, resource_id: str | None = None) -> Json:
    """`ValueSet/$expand`: the value set with `expansion.contains`, filtered and paged.

    In: url (or valueSet inline, or the instance id), valueSetVersion, filter (text,
    case-insensitive substring of code/display/designations), count, offset,
    displayLanguage (`zh`, `en`), includeDesignations. Out: a ValueSet resource.
    Raises: InvalidInput, NotFound, NotSupported, TooCostly (more than 20,000 codes unpaged).
    FHIR R4B ValueSet §4.9.17 ($expand), §4.9.8 (expansion.parameter).
    """
    inp = as_in(request)
    resource, items = _valueset_and_items(index, inp, resource_id)
    text = (inp.text("filter") or "").strip().lower()
    if text:
        items = [i for i in items if _matches(i, text)]
    offset, count = (
        inp.integer("offset", 0),
        inp.integer("count", -1) if inp.get("count") is not None else None,
    )
    if count is None and len(items) > MAX_UNPAGED:
        raise TooCostly(f"the expansion has {len(items)} codes; page it with count and offset")
    page = items[offset : offset + count] if count is not None else items[offset:]
    language = inp.text("displayLanguage")
    designations = inp.flag("includeDesignations")
    echo = [
        (n, k, v)
        for n, k, v in (
            ("filter", "String", inp.text("filter")),
            ("offset", "Integer", offset),
            ("count", "Integer", count),
            ("displayLanguage", "Code", language),
        )
        if v is not None
    ]
    result = {k: v for k, v in resource.items() if k not in ("compose", "expansion", "text", "meta")}
    result["expansion"] = {
        "identifier": f"urn:uuid:{uuid.uuid4()}",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "total": len(items),
        "offset": offset,
        "parameter": [{"name": n, f"value{k}": v} for n, k, v in echo],
        "contains": [_contains(i, language, designations) for i in page],
    }
    return result


def _matches(item: Item, text: str) -> bool:
    if text in item.code.lower() or (item.display and text in item.display.lower()):
        return True
    return bool(item.concept and any(text in d.value.lower() for d in item.concept.designations))


def _contains(item: Item, language: str | None, designations: bool) -> Json:
    entry: Json = {"system": item.system}
    if item.version:
        entry["version"] = item.version
    entry["code"] = item.code
    display = item.display_in(language)
    if display:
        entry["display"] = display
    if designations and item.concept and item.concept.designations:
        entry["designation"] = [
            {k: v for k, v in (("language", d.language), ("use", d.use), ("value", d.value)) if v}
            for d in item.concept.designations
        ]
    return entry


def validate_code(
    index: TerminologyIndex, request: Json | In | None, *, resource_id: str | None = None
) -> Json:
    """`ValueSet/$validate-code`: is the code in the value set?

    In: url (or valueSet, or the instance id), code+system (or coding / codeableConcept),
    display. Out: Parameters (result, message, display). Membership is tested against
    the compose rules, so value sets over rule-based systems (UCUM) need no enumeration.
    Raises: InvalidInput, NotFound. FHIR R4B ValueSet §4.9.18.
    """
    inp = as_in(request)
    system, code, version, display = coding_in(inp)
    if not system or not code:
        raise InvalidInput("$validate-code needs system and code, or coding", expression=("code",))
    inline = inp.mapping("valueSet")
    if inline is not None:
        resource: Json = dict(inline)
    else:
        url = inp.text("url")
        if resource_id is not None:
            url = next(
                (u for u, v in index.value_sets.items() for r in v.values() if r.get("id") == resource_id),
                None,
            )
        if not url:
            raise InvalidInput("$validate-code needs url or valueSet", expression=("url",))
        compose = implicit_compose(url)
        found_vs = {"compose": compose} if compose else index.valueset(url, inp.text("valueSetVersion"))
        if found_vs is None:
            raise NotFound(f"ValueSet {url} is not known", expression=("url",))
        resource = found_vs
    found = index.resolve(system, code, version)
    if found is None or not contains(index, resource, system, found.code):
        return out(
            p("result", "Boolean", False), p("message", "String", f"{system}|{code} is not in the value set")
        )
    if (
        display
        and found.display
        and display.lower()
        not in {found.display.lower()}
        | {d.value.lower() for d in (found.concept.designations if found.concept else ())}
    ):
        return out(
            p("result", "Boolean", False),
            p("message", "String", f"display {display!r} is not valid"),
            p("display", "String", found.display),
        )
    return out(p("result", "Boolean", True), p("display", "String", found.display))


def contains(index: TerminologyIndex, resource: Json, system: str, code: str, depth: int = 0) -> bool:
    """Membership of system|code in a ValueSet by its compose rules (or its stored expansion)."""
    compose = resource.get("compose")
    if compose is None:
        return any(
            c.get("system") == system and c.get("code") == code
            for c in resource.get("expansion", {}).get("contains", [])
        )
    if depth > 8:
        raise InvalidInput("ValueSet references nest too deep (a cycle?)")
    included = any(_in_include(index, inc, system, code, depth) for inc in compose.get("include", []))
    return included and not any(
        _in_include(index, exc, system, code, depth) for exc in compose.get("exclude", [])
    )


def _in_include(index: TerminologyIndex, include: Json, system: str, code: str, depth: int) -> bool:
    for url in include.get("valueSet", []):
        nested = {"compose": implicit_compose(url)} if "?fhir_vs" in url else index.valueset(url)
        if nested is None or not contains(index, nested, system, code, depth + 1):
            return False
    if include.get("system") is None:
        return bool(include.get("valueSet"))
    if include["system"] != system:
        return False
    if include.get("concept"):
        return code in {c.get("code") for c in include["concept"]}
    cs = index.codesystem(system, include.get("version"))
    codes = [code]
    for flt in include.get("filter", []):
        if cs is None:
            raise TooCostly(f"filters on {system} are not supported")
        codes = _apply_filter(cs, codes, flt)
    return bool(codes)


def translate(index: TerminologyIndex, request: Json | In | None, *, resource_id: str | None = None) -> Json:
    """`ConceptMap/$translate`: standard codes for a code, through concept maps.

    In: url (ConceptMap canonical) or the instance id (else every map), system+code (or
    coding / codeableConcept), targetsystem, reverse. ICD-10 codes (WHO or Chinese
    editions) also translate to WHO ICD-10 by roll-up. Out: Parameters (result, message,
    match*(equivalence, concept, source)). Raises: InvalidInput, NotFound (unknown map).
    FHIR R4B ConceptMap §4.10.9 ($translate).
    """
    inp = as_in(request)
    system, code, _, _ = coding_in(inp)
    if not system or not code:
        raise InvalidInput("$translate needs system and code, or coding", expression=("code",))
    maps = _maps(index, inp.text("url"), resource_id)
    reverse = inp.flag("reverse")
    target_system = inp.text("targetsystem")
    targets: list[Target] = []
    for cm in maps:
        targets += (cm.reverse if reverse else cm.forward).get((system, code), [])
    if not reverse and system in ICD10_SYSTEMS and inp.text("url") is None and resource_id is None:
        targets += _icd10_rollup(index, code)
    if target_system:
        targets = [t for t in targets if t.system == target_system]
    good = [t for t in targets if t.equivalence not in ("unmatched", "disjoint") and t.code]
    matches = [
        part(
            "match",
            p("equivalence", "Code", t.equivalence),
            p("concept", "Coding", t.coding()),
            p("source", "Uri", t.source_url),
        )
        for t in targets
    ]
    message = None if good else f"no mapping found for {system}|{code}"
    return out(p("result", "Boolean", bool(good)), p("message", "String", message), *matches)


def _maps(index: TerminologyIndex, url: str | None, resource_id: str | None) -> list[ConceptMapIndex]:
    if resource_id is not None:
        found = [cm for cm in index.concept_maps.values() if cm.resource_id == resource_id]
        if not found:
            raise NotFound(f"ConceptMap/{resource_id} is not known")
        return found
    if url is not None:
        cm = index.concept_maps.get(url)
        if cm is None:
            raise NotFound(f"ConceptMap {url} is not known", expression=("url",))
        return [cm]
    return list(index.concept_maps.values())


def _icd10_rollup(index: TerminologyIndex, code: str) -> list[Target]:
    rolled = icd10.rollup(code)
    who = index.codesystem(ICD10)
    if rolled is None or who is None or who.find(rolled.who_code) is None:
        return []
    concept = who.concepts[rolled.who_code]
    return [Target(ICD10, rolled.who_code, concept.display, "equivalent" if rolled.exact else "wider")]
