"""Index extraction: a pure function from a resource (JSON dict) to typed index entries.

Driven by the compiled SearchParameter expressions (`ehr_store.search.fhirpath`); the value
of each selected element is turned into entries by the parameter's type and the element's
FHIR type (FHIR R4B search §3.1.1.5: token, string, date, reference, quantity, number, uri).
No database here.

May import: the standard library, pypinyin, `ehr_store.search.{entries,fhirpath,registry,values}`.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from functools import lru_cache
from typing import Any

from ehr_store.search.entries import (
    DateEntry,
    IndexEntries,
    NumberEntry,
    QuantityEntry,
    ReferenceEntry,
    StringEntry,
    TokenEntry,
    UriEntry,
)
from ehr_store.search.fhirpath import Node
from ehr_store.search.registry import Registry, SearchParamDef
from ehr_store.search.values import (
    MAX_DT,
    MIN_DT,
    date_value_range,
    decimal_range,
    normalize_string,
    to_decimal,
)

__all__ = [
    "DateEntry",
    "IndexEntries",
    "NumberEntry",
    "QuantityEntry",
    "ReferenceEntry",
    "StringEntry",
    "TokenEntry",
    "UriEntry",
    "extract_index",
    "parse_reference",
]


def extract_index(resource: dict[str, Any], registry: Registry) -> IndexEntries:
    """Index entries for every search parameter of `resource["resourceType"]`.

    Dates without an offset are read in `registry.tz`. Duplicates are removed. `_id` and
    `_lastUpdated` are not extracted (they are columns of the resource row).
    Spec: FHIR R4B search §3.1.1.4-5. Raises: nothing (unusable values index nothing).
    """
    entries = IndexEntries()
    by_key, always = registry.extraction_plan(resource["resourceType"])
    selected = dict.fromkeys(always)
    for key in resource:
        for sp in by_key.get(key, ()):
            selected[sp] = None
    tz = registry.tz
    for sp in selected:
        nodes = sp.path.evaluate(resource)  # type: ignore[union-attr]
        if nodes:
            _ADDERS[sp.type](entries, sp, nodes, tz)
    for _, items in entries.kinds():
        if len(items) > 1:
            items[:] = list(dict.fromkeys(items))
    return entries


def _add_token(out: IndexEntries, sp: SearchParamDef, nodes: list[Node], tz: tzinfo) -> None:
    add = out.token.append
    code = sp.code
    for value, typ in nodes:
        if isinstance(value, bool):
            add(TokenEntry(code, None, "true" if value else "false", None))
        elif isinstance(value, str):
            add(TokenEntry(code, None, value, None))
        elif isinstance(value, dict):
            _token_dict(out.token, code, value, typ)


def _token_dict(out: list[TokenEntry], code: str, value: dict[str, Any], typ: str | None) -> None:
    if typ == "CodeableConcept" or (typ is None and ("coding" in value or set(value) == {"text"})):
        for coding in value.get("coding", ()):
            if isinstance(coding, dict):
                _token_dict(out, code, coding, "Coding")
        if isinstance(value.get("text"), str):
            out.append(TokenEntry(code, None, None, normalize_string(value["text"])))
    elif typ == "Identifier" or (typ is None and "value" in value and "system" in value):
        text = (value.get("type") or {}).get("text")
        out.append(
            TokenEntry(
                code,
                value.get("system"),
                _str(value.get("value")),
                normalize_string(text) if isinstance(text, str) else None,
            )
        )
    elif typ == "ContactPoint":
        out.append(TokenEntry(code, value.get("system"), _str(value.get("value")), None))
    else:  # Coding (and anything shaped like one)
        display = value.get("display")
        if value.get("code") is not None or value.get("system") is not None:
            out.append(
                TokenEntry(
                    code,
                    value.get("system"),
                    _str(value.get("code")),
                    normalize_string(display) if isinstance(display, str) else None,
                )
            )


INDEXED_CHARS = 1024
"""Characters of a string value looked at (the index columns keep 255 after normalising)."""
PINYIN_CHARS = 64
"""CJK characters turned into pinyin for `phonetic` (a name; 64 characters give more than the
255 the column keeps). pypinyin on a 1,000,000-character name took 19 s inside the write."""


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _add_string(out: IndexEntries, sp: SearchParamDef, nodes: list[Node], tz: tzinfo) -> None:
    for value, typ in nodes:
        parts: list[str] = []
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, dict):
            if typ == "HumanName" or (typ is None and ("family" in value or "given" in value)):
                parts.extend(_name_parts(value))
            else:  # Address and others: every string part
                for key in ("text", "line", "city", "district", "state", "postalCode", "country"):
                    item = value.get(key)
                    parts.extend(item if isinstance(item, list) else [item] if item is not None else [])
        # the index keeps 255 characters of a value: a megabyte-long name costs no more than that
        parts = [part[:INDEXED_CHARS] if isinstance(part, str) else part for part in parts]
        if sp.code == "phonetic":
            parts.extend(p for part in parts if isinstance(part, str) for p in _pinyin(part[:PINYIN_CHARS]))
        for part in parts:
            if isinstance(part, str) and part.strip():
                out.string.append(StringEntry(sp.code, normalize_string(part.strip()), part.strip()))


@lru_cache(maxsize=65536)
def _pinyin(text: str) -> tuple[str, ...]:
    """Toneless pinyin of a CJK name for `phonetic`: `张三` → (`zhangsan`, `zhang san`)."""
    if not _is_cjk(text):
        return ()
    from pypinyin import lazy_pinyin

    syllables = lazy_pinyin(text)
    return ("".join(syllables), " ".join(syllables))


def _name_parts(name: dict[str, Any]) -> list[str]:
    """HumanName parts: text, family, each given, prefix/suffix, and family+given joined
    (without a space for CJK names, `张` + `三` → `张三`; with one otherwise)."""
    family = name.get("family") if isinstance(name.get("family"), str) else None
    given = [g for g in name.get("given", ()) if isinstance(g, str)]
    parts = [p for p in (name.get("text"), family) if isinstance(p, str)]
    parts.extend(given)
    parts.extend(p for key in ("prefix", "suffix") for p in name.get(key, ()) if isinstance(p, str))
    if family and given:
        joined = "".join(given)
        parts.append(family + joined if _is_cjk(family) else f"{family} {' '.join(given)}")
        parts.append(joined if _is_cjk(family) else " ".join(given))
    return parts


def _is_cjk(text: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" for ch in text)


def _add_date(out: IndexEntries, sp: SearchParamDef, nodes: list[Node], tz: tzinfo) -> None:
    for value, _typ in nodes:
        if isinstance(value, dict):
            for rng in _complex_ranges(value, tz):
                out.date.append(DateEntry(sp.code, *rng))
        else:
            found = date_value_range(value, tz)
            if found is not None:
                out.date.append(DateEntry(sp.code, *found))


def _complex_ranges(value: dict[str, Any], tz: tzinfo) -> list[tuple[datetime, datetime]]:
    """Period (open ends are unbounded) and Timing (each event, and repeat.boundsPeriod)."""
    if "start" in value or "end" in value:
        start = date_value_range(value.get("start"), tz) if value.get("start") else None
        end = date_value_range(value.get("end"), tz) if value.get("end") else None
        return [(start[0] if start else MIN_DT, end[1] if end else MAX_DT)]
    ranges = [r for r in (date_value_range(e, tz) for e in value.get("event", ())) if r]
    bounds = (value.get("repeat") or {}).get("boundsPeriod")
    if isinstance(bounds, dict):
        ranges.extend(_complex_ranges(bounds, tz))
    return ranges


def parse_reference(ref: str) -> tuple[str | None, str | None, str | None]:
    """(target_type, target_id, absolute_url) of a reference string: `Patient/1`,
    `http://host/fhir/Patient/1/_history/2`, a canonical `http://x/ValueSet/y|1.0`, or `urn:uuid:..`.
    """
    if ref.startswith("#"):
        return None, None, None
    absolute = "://" in ref or ref.startswith("urn:")
    base = ref.split("|", 1)[0]
    parts = base.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) >= 2 and parts[-2][:1].isupper() and parts[-2].isalpha() and parts[-1]:
        return parts[-2], parts[-1], (ref if absolute else None)
    return None, None, (ref if absolute else None)


def _add_reference(out: IndexEntries, sp: SearchParamDef, nodes: list[Node], tz: tzinfo) -> None:
    for value, _typ in nodes:
        if isinstance(value, str):  # canonical
            t, i, url = parse_reference(value)
            out.reference.append(ReferenceEntry(sp.code, t, i, url or value, None, None))
        elif isinstance(value, dict):
            ref = value.get("reference")
            raw_ident = value.get("identifier")
            ident: dict[str, Any] = raw_ident if isinstance(raw_ident, dict) else {}
            if isinstance(ref, str):
                t, i, url = parse_reference(ref)
                if t is not None or url is not None:
                    out.reference.append(ReferenceEntry(sp.code, t, i, url, None, None))
            if ident.get("value"):
                out.reference.append(
                    ReferenceEntry(
                        sp.code, value.get("type"), None, None, ident.get("system"), ident.get("value")
                    )
                )


def _add_quantity(out: IndexEntries, sp: SearchParamDef, nodes: list[Node], tz: tzinfo) -> None:
    for value, _typ in nodes:
        if not isinstance(value, dict):
            continue
        quantities = [value.get("low"), value.get("high")] if ("low" in value or "high" in value) else [value]
        for q in quantities:
            number = to_decimal(q.get("value")) if isinstance(q, dict) else None
            if number is None or not isinstance(q, dict):
                continue
            low, high = decimal_range(number)
            out.quantity.append(
                QuantityEntry(sp.code, number, low, high, q.get("system"), q.get("code"), q.get("unit"))
            )


def _add_number(out: IndexEntries, sp: SearchParamDef, nodes: list[Node], tz: tzinfo) -> None:
    for value, _typ in nodes:
        number = to_decimal(value)
        if number is not None:
            out.number.append(NumberEntry(sp.code, number, *decimal_range(number)))


def _add_uri(out: IndexEntries, sp: SearchParamDef, nodes: list[Node], tz: tzinfo) -> None:
    for value, _typ in nodes:
        if isinstance(value, str):
            out.uri.append(UriEntry(sp.code, value))


_ADDERS = {
    "token": _add_token,
    "string": _add_string,
    "date": _add_date,
    "reference": _add_reference,
    "quantity": _add_quantity,
    "number": _add_number,
    "uri": _add_uri,
}
