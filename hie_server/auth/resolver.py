"""Resident facts for the access rules, read from the store in a handful of queries.

`resident_facts(repo, patient_ids)` returns, for each given Patient id, the `ResidentFacts` of
the resident it belongs to: all their Patient records (golden and sources, following
`Patient.link` refer/seealso/replaces/replaced-by as INTERFACES.md describes), the facilities
that registered them (`meta.source` / `managingOrganization`), the counties they live in
(`address.district`, GB/T 2260), facilities that referred them (ServiceRequest.requester) or
consult for them (active ServiceRequest.performer), and their Consents (permit / opt-out).

Queries per call, whatever the number of patients: up to 3 batched reads of Patients, one
ServiceRequest search and one Consent search.

May import: `ehr_store`, `hie_server.auth.*`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from ehr_store import ResourceRepository, StoredResource, json_loads
from hie_server.auth.compartment import facility_of_reference, resource_facility
from hie_server.auth.policy import ResidentFacts

Json = dict[str, Any]
_GOLDEN_TAG = "golden"
_MAX_REFS = 500


def _load(repo: ResourceRepository, ids: Iterable[str], into: dict[str, Json]) -> None:
    wanted = [("Patient", i) for i in ids if i not in into]
    if not wanted:
        return
    for (_, pid), stored in repo.read_many(wanted).items():
        if not stored.deleted:
            into[pid] = json_loads(stored.content)
    for _, pid in wanted:
        into.setdefault(pid, {})


def _links(patient: Json, *kinds: str) -> list[str]:
    out = []
    for link in patient.get("link", []):
        ref = str((link.get("other") or {}).get("reference", ""))
        if link.get("type") in kinds and ref.startswith("Patient/"):
            out.append(ref.split("/", 2)[1])
    return out


def _is_golden(patient: Json) -> bool:
    return any(t.get("code") == _GOLDEN_TAG for t in (patient.get("meta") or {}).get("tag", []))


def _records(
    repo: ResourceRepository, patient_ids: Iterable[str]
) -> tuple[dict[str, frozenset[str]], dict[str, Json]]:
    """({requested id: ids of all the resident's Patients}, {id: Patient JSON})."""
    patients: dict[str, Json] = {}
    requested = list(dict.fromkeys(patient_ids))
    _load(repo, requested, patients)
    heads = {
        pid: ([pid] if _is_golden(patients[pid]) else _links(patients[pid], "refer", "replaced-by"))
        for pid in requested
    }
    _load(repo, [h for hs in heads.values() for h in hs], patients)
    members = {h: _links(patients[h], "seealso", "replaces") for hs in heads.values() for h in hs}
    _load(repo, [m for ms in members.values() for m in ms], patients)
    records = {}
    for pid in requested:
        ids = {pid, *heads[pid]}
        for head in heads[pid]:
            ids.update(members.get(head, ()))
        records[pid] = frozenset(ids)
    return records, patients


def _search_all(
    repo: ResourceRepository, rtype: str, param: str, ids: Iterable[str], extra: list[tuple[str, str]]
) -> list[Json]:
    refs = sorted(f"Patient/{i}" for i in ids)
    found: list[Json] = []
    for start in range(0, len(refs), _MAX_REFS):
        chunk = ",".join(refs[start : start + _MAX_REFS])
        result = repo.search(rtype, [(param, chunk), *extra, ("_count", "1000")])
        found.extend(json_loads(m.content) for m in result.matches)
    return found


def _active(resource: Json, now: datetime) -> bool:
    end = (resource.get("provision") or {}).get("period", {}).get("end")
    if not end:
        return True
    try:
        moment = datetime.fromisoformat(str(end).replace("Z", "+00:00"))
    except ValueError:
        return True
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) >= now


def resident_facts(repo: ResourceRepository, patient_ids: Iterable[str]) -> dict[str, ResidentFacts]:
    """{patient id: facts of its resident} (see module docstring). Unknown ids get empty facts."""
    records, patients = _records(repo, patient_ids)
    all_ids = {i for ids in records.values() for i in ids}
    if not all_ids:
        return {}
    requests = _search_all(repo, "ServiceRequest", "subject", all_ids, [("status", "active,completed")])
    consents = _search_all(repo, "Consent", "patient", all_ids, [("status", "active")])
    now = datetime.now(UTC)
    out = {}
    for pid, ids in records.items():
        subject_refs = {f"Patient/{i}" for i in ids}
        mine = [sr for sr in requests if (sr.get("subject") or {}).get("reference") in subject_refs]
        referred = {_requester_facility(sr) for sr in mine} - {None}
        consulting = {
            facility_of_reference(str(p.get("reference", "")))
            for sr in mine
            if sr.get("status") == "active"
            for p in sr.get("performer", [])
        } - {None}
        own = [
            c
            for c in consents
            if (c.get("patient") or {}).get("reference") in subject_refs and _active(c, now)
        ]
        kinds = {(c.get("provision") or {}).get("type") for c in own}
        docs = [patients[i] for i in ids if patients.get(i)]
        out[pid] = ResidentFacts(
            patient_ids=ids,
            facilities=frozenset(f for f in (resource_facility(d) for d in docs if not _is_golden(d)) if f),
            counties=frozenset(
                str(a["district"]) for d in docs for a in d.get("address", []) if a.get("district")
            ),
            referred_from=frozenset(f for f in referred if f),
            consulting=frozenset(f for f in consulting if f),
            consent_permit="permit" in kinds,
            opted_out="deny" in kinds,
        )
    return out


def _requester_facility(sr: Json) -> str | None:
    ref = str((sr.get("requester") or {}).get("reference", ""))
    return facility_of_reference(ref) or resource_facility(sr)


def stored_json(stored: StoredResource) -> Json:
    """The JSON object of a stored resource."""
    doc: Json = json_loads(stored.content)
    return doc
