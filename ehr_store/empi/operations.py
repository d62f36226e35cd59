"""Patient/$match and Patient/$everything as plain functions (the REST layer exposes them).

May import: the standard library, `ehr_store` (errors, model, repository, jsonio), `ehr_store.empi.*`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any

from ehr_store.empi.features import extract
from ehr_store.empi.golden import link_targets
from ehr_store.empi.scoring import match_grade, normalised_score
from ehr_store.empi.service import EmpiService
from ehr_store.errors import InvalidInput
from ehr_store.jsonio import loads_resource
from ehr_store.model import StoredResource
from ehr_store.repository import ResourceRepository
from ehr_store.search import get_registry

MATCH_GRADE_URL = "http://hl7.org/fhir/StructureDefinition/match-grade"
# Security records about the resident, not part of the health record: every read of the record
# writes AuditEvents about it, so including them would let audit trail push clinical data off
# page 1 (HAPI FHIR leaves them out of $everything too). Search `AuditEvent?patient=` instead.
NOT_IN_RECORD = frozenset({"AuditEvent"})
Json = dict[str, Any]


def match(
    service: EmpiService,
    repo: ResourceRepository,
    patient: Json,
    *,
    only_certain: bool = False,
    count: int = 10,
) -> list[tuple[StoredResource, float, str]]:
    """Patient/$match (FHIR R4B Patient-match): resident records resembling `patient`.

    Returns (golden Patient, search.score 0..1, match-grade) best first, at most `count`,
    grade `certainly-not` left out. `only_certain`: only `certain` matches, and none when
    more than one resident is certain (FHIR R4B: the server must not return several then).
    Raises: InvalidInput (not a Patient, or count < 1).
    """
    if patient.get("resourceType") != "Patient":
        raise InvalidInput("$match needs a Patient resource", expression=("Parameters.parameter.resource",))
    if count < 1:
        raise InvalidInput("count must be at least 1", expression=("Parameters.parameter.count",))
    ranked = service.rank(service.index(repo), extract(patient))
    rows = [
        (e.golden_id, normalised_score(e.comparison, service.rules), match_grade(e.comparison, service.rules))
        for e in ranked
    ]
    rows = [r for r in rows if r[2] != "certainly-not"]
    if only_certain:
        rows = [r for r in rows if r[2] == "certain"]
        rows = rows if len(rows) == 1 else []
    rows = rows[:count]
    found = repo.read_many(("Patient", gid) for gid, _, _ in rows)
    return [(found[("Patient", gid)], s, g) for gid, s, g in rows if ("Patient", gid) in found]


def match_bundle(results: list[tuple[StoredResource, float, str]], base_url: str) -> Json:
    """Bundle (searchset) of $match results with `search.score` and the match-grade extension."""
    entries = []
    for stored, score, grade in results:
        entries.append(
            {
                "fullUrl": f"{base_url.rstrip('/')}/Patient/{stored.id}",
                "resource": loads_resource(stored.content),
                "search": {
                    "mode": "match",
                    "score": score,
                    "extension": [{"url": MATCH_GRADE_URL, "valueCode": grade}],
                },
            }
        )
    return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}


@lru_cache(maxsize=1)
def compartment() -> dict[str, tuple[str, ...]]:
    """Patient compartment (FHIR R4B CompartmentDefinition): resource type → search parameters,
    limited to the types and parameters the store's search registry knows."""
    text = (
        resources.files("ehr_store.search")
        .joinpath("data/compartmentdefinition-patient.json")
        .read_text("utf-8")
    )
    registry = get_registry()
    result: dict[str, tuple[str, ...]] = {}
    for entry in json.loads(text)["resource"]:
        rtype = entry["code"]
        if not entry.get("param") or not registry.is_known_type(rtype):
            continue
        params = tuple(p for p in entry["param"] if rtype == "Patient" or registry.get(rtype, p) is not None)
        if params:
            result[rtype] = params
    return result


@dataclass(frozen=True, slots=True)
class EverythingPage:
    """One page of Patient/$everything: `resources` in order, `total` in the whole record,
    `next_offset` for the next page (None on the last)."""

    resources: list[StoredResource]
    total: int
    next_offset: int | None


def record_patient_ids(service: EmpiService, repo: ResourceRepository, patient_id: str) -> list[str]:
    """Every Patient of the resident: golden, its sources, Patients merged into them
    (`replaces`/`replaced-by`, transitively), and retired golden records. Raises: NotFound."""
    golden = service.golden_of(repo, patient_id)
    ids: list[str] = []
    todo = [golden, patient_id]
    while todo:
        pid = todo.pop()
        if pid in ids:
            continue
        ids.append(pid)
        found = repo.read_many([("Patient", pid)]).get(("Patient", pid))
        if found is None:
            continue
        doc = loads_resource(found.content)
        for kind in ("seealso", "replaces", "refer"):
            todo.extend(link_targets(doc, kind))
    return sorted(ids)


def everything(
    service: EmpiService,
    repo: ResourceRepository,
    patient_id: str,
    *,
    since: datetime | None = None,
    types: list[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    count: int = 50,
    offset: int = 0,
) -> EverythingPage:
    """Patient/{id}/$everything on a golden or source Patient (FHIR R4B Patient-everything):
    the Patients of the resident and every Patient-compartment resource of any of them, except
    AuditEvent (`NOT_IN_RECORD`: security records, not health data; Provenance is kept).

    `since` (`_since`): last updated at or after; `types` (`_type`); `start`/`end`: care
    dates (`date` parameter, for types that have one); `count`/`offset`: paging over the
    whole record ordered by type then id — every resource is reachable, nothing is capped.
    Raises: NotFound (unknown Patient), InvalidInput (bad paging, unknown `_type` or AuditEvent).
    """
    if count < 1 or offset < 0:
        raise InvalidInput("_count must be ≥ 1 and the offset ≥ 0")
    if types and NOT_IN_RECORD.intersection(types):
        raise InvalidInput(
            "$everything returns the health record without AuditEvent; search AuditEvent?patient= instead",
            expression=("_type",),
        )
    comp = {t: params for t, params in compartment().items() if t not in NOT_IN_RECORD}
    wanted = sorted(set(types) if types else set(comp), key=lambda t: (t != "Patient", t))
    unknown = [t for t in wanted if t not in comp]
    if unknown:
        raise InvalidInput(f"_type names types outside the Patient compartment: {', '.join(unknown)}")
    pids = record_patient_ids(service, repo, patient_id)
    refs = ",".join(f"Patient/{p}" for p in pids)
    keys: list[tuple[str, str]] = []
    for rtype in wanted:
        found: set[str] = set()
        if rtype == "Patient":
            found.update(pids)
        else:
            for param in comp[rtype]:
                found.update(_ids(repo, rtype, [(param, refs), *_filters(rtype, since, start, end)]))
        keys.extend((rtype, rid) for rid in sorted(found))
    page_keys = keys[offset : offset + count]
    got = repo.read_many(page_keys)
    items = [got[k] for k in page_keys if k in got]
    if since is not None:
        items = [r for r in items if r.resource_type != "Patient" or r.last_updated >= since]
    nxt = offset + count if offset + count < len(keys) else None
    return EverythingPage(items, len(keys), nxt)


def _filters(rtype: str, since: datetime | None, start: str | None, end: str | None) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    if since is not None:
        params.append(("_lastUpdated", f"ge{since.isoformat()}"))
    if get_registry().get(rtype, "date") is not None:
        if start:
            params.append(("date", f"ge{start}"))
        if end:
            params.append(("date", f"le{end}"))
    return params


def _ids(repo: ResourceRepository, rtype: str, params: list[tuple[str, str]]) -> set[str]:
    ids: set[str] = set()
    offset, page = 0, 500
    while True:
        result = repo.search(rtype, [*params, ("_count", str(page)), ("_offset", str(offset))])
        ids.update(r.id for r in result.matches)
        if not result.has_more:
            return ids
        offset += page
