"""Bundle assembly from stored bytes: searchset and history Bundles, paging links,
`_summary` and `_elements` subsetting (FHIR R4B search §3.1.1.5.6–§3.1.1.5.9, http §3.1.0.4).

Stored resources are embedded as `orjson.Fragment`s (their bytes unchanged); only subsetted
resources are parsed (with `jsonio`, decimals exact) and re-written.

May import: orjson, fhir.resources (element metadata), `ehr_store`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import orjson
from fhir.resources.R4B import get_fhir_model_class

from ehr_store import InvalidInput, Issue, StoredResource, json_dumps, json_loads

Json = dict[str, Any]
SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
SUMMARY_VALUES = frozenset({"true", "false", "text", "data", "count"})
_ALWAYS = ("resourceType", "id", "meta")
_STATUS_BY_METHOD = {"POST": "201 Created", "PUT": "200 OK", "PATCH": "200 OK", "DELETE": "204 No Content"}


@dataclass(frozen=True, slots=True)
class Subset:
    """How to subset resources: `_summary` (true|text|data|false) and `_elements` (names)."""

    summary: str = "false"
    elements: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return self.summary != "false" or bool(self.elements)


@lru_cache(maxsize=256)
def summary_elements(resource_type: str) -> frozenset[str]:
    """Top-level element names marked `isSummary` for a type (from the R4B model metadata)."""
    try:
        model = get_fhir_model_class(resource_type)
    except ValueError:
        return frozenset(_ALWAYS)
    names = set(_ALWAYS)
    for field in model.model_fields.values():
        extra = field.json_schema_extra
        if isinstance(extra, dict) and extra.get("summary_element_property") and field.alias:
            names.add(field.alias)
    return frozenset(names)


def _mark_subsetted(document: Json) -> None:
    meta = dict(document.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    document["meta"] = meta


def subset_resource(stored: StoredResource, subset: Subset) -> bytes | Json:
    """The resource's bytes unchanged, or a subsetted copy tagged SUBSETTED."""
    if not subset.active or stored.deleted:
        return stored.content
    document: Json = json_loads(stored.content)
    if subset.elements:
        keep = set(_ALWAYS) | set(subset.elements)
    elif subset.summary == "true":
        keep = set(summary_elements(stored.resource_type))
    elif subset.summary == "text":
        keep = {*_ALWAYS, "text"}
    else:  # data
        keep = set(document) - {"text"}
    result = {k: v for k, v in document.items() if k in keep or (k.startswith("_") and k[1:] in keep)}
    _mark_subsetted(result)
    return result


def _embed(content: bytes | Json) -> Any:
    return orjson.Fragment(content) if isinstance(content, bytes) else content


def page_link(base: str, path: str, params: Sequence[tuple[str, str]], count: int, offset: int) -> str:
    """Absolute link to a page of a search or history: `params` plus `_count` and `_offset`."""
    pairs = [*params, ("_count", str(count))]
    if offset:
        pairs.append(("_offset", str(offset)))
    query = urlencode(pairs)
    return f"{base}/{path}".rstrip("/") + (f"?{query}" if query else "")


def paging_links(
    base: str, path: str, params: Sequence[tuple[str, str]], count: int, offset: int, has_more: bool
) -> list[Json]:
    """`self`, `first`, `previous`, `next` links (FHIR R4B http §3.1.0.1.13)."""
    links = [
        {"relation": "self", "url": page_link(base, path, params, count, offset)},
        {"relation": "first", "url": page_link(base, path, params, count, 0)},
    ]
    if offset > 0:
        links.append(
            {"relation": "previous", "url": page_link(base, path, params, count, max(0, offset - count))}
        )
    if has_more:
        links.append({"relation": "next", "url": page_link(base, path, params, count, offset + count)})
    return links


def searchset(
    base: str,
    matches: Iterable[StoredResource],
    included: Iterable[StoredResource],
    *,
    links: list[Json],
    total: int | None,
    warnings: Sequence[Issue] = (),
    subset: Subset = Subset(),
) -> bytes:
    """A searchset Bundle: `match` entries, then `include` entries, then an `outcome` entry."""
    entries: list[Json] = [
        {
            "fullUrl": f"{base}/{r.reference}",
            "resource": _embed(subset_resource(r, subset)),
            "search": {"mode": "match"},
        }
        for r in matches
    ]
    entries += [
        {"fullUrl": f"{base}/{r.reference}", "resource": _embed(r.content), "search": {"mode": "include"}}
        for r in included
    ]
    if warnings:
        oo = {"resourceType": "OperationOutcome", "issue": [w.to_fhir() for w in warnings]}
        entries.append({"resource": oo, "search": {"mode": "outcome"}})
    bundle: Json = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        bundle["total"] = total
    bundle["link"] = links
    if entries:  # FHIR JSON has no empty arrays (json §2.6.2)
        bundle["entry"] = entries
    return json_dumps(bundle)


def history_status(r: StoredResource) -> str:
    """The `response.status` of a history entry: what the interaction did (FHIR R4B http
    §3.1.0.4 update-as-create, §3.1.0.4.1). A PUT that made version 1 created the resource
    ("201 Created"), like a POST; other PUTs and PATCHes "200 OK"; DELETE "204 No Content"."""
    if r.method == "PUT" and r.version_id == 1:
        return "201 Created"
    return _STATUS_BY_METHOD.get(r.method, "200 OK")


def history_entry(base: str, r: StoredResource) -> Json:
    """One `history` Bundle entry with `request` and `response` (FHIR R4B http §3.1.0.4.1)."""
    url = r.resource_type if r.method == "POST" else r.reference
    entry: Json = {"fullUrl": f"{base}/{r.reference}"}
    if not r.deleted and r.content:
        entry["resource"] = orjson.Fragment(r.content)
    entry["request"] = {"method": r.method, "url": url}
    entry["response"] = {
        "status": history_status(r),
        "etag": r.etag,
        "lastModified": r.last_updated.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    return entry


def history_bundle(
    base: str, versions: Iterable[StoredResource], *, links: list[Json], total: int | None
) -> bytes:
    """A `history` Bundle, newest first."""
    bundle: Json = {"resourceType": "Bundle", "type": "history"}
    if total is not None:
        bundle["total"] = total
    bundle["link"] = links
    entries = [history_entry(base, r) for r in versions]
    if entries:  # FHIR JSON has no empty arrays (json §2.6.2)
        bundle["entry"] = entries
    return json_dumps(bundle)


def parse_subset(summary: str | None, elements: Sequence[str]) -> Subset:
    """`_summary` and `_elements` values as a Subset. Raises: InvalidInput (unknown `_summary`)."""
    value = (summary or "false").lower()
    if value not in SUMMARY_VALUES:
        raise InvalidInput(
            f"_summary={summary} is not one of true, false, text, data, count", expression=("_summary",)
        )
    names = tuple(n.strip() for e in elements for n in e.split(",") if n.strip())
    return Subset(value if value != "count" else "false", names)
