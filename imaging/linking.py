"""Which resident a study belongs to, and which order it answers. Read-only store queries.

`link_subject(repo, snap, mrn_systems)` tries, in order:
1. facility PatientID + IssuerOfPatientID -> the source Patient whose identifier has that
   facility's MRN system (`urn:qyhie:facility:<issuer>:mrn` unless configured otherwise, the
   HL7 mapping's scheme) and that value;
2. a valid 身份证号 (GB 11643) in OtherPatientIDs -> the one resident holding it.
Anything uncertain is *not* linked and goes to review with a reason: no PatientID, no issuer
and no 身份证号, no Patient found, several Patients, the two ways naming different residents,
or the birth date disagreeing. A study is never attached to a guessed patient.

`find_order(repo, accession, issuer, subject)` finds the ServiceRequest whose ACSN identifier is the
study's AccessionNumber (ORM/OML OBR-18), and only when it is the same resident's order.

May import: `ehr_store`, `ehr_store.empi` (golden-record helpers), `ehr_store.resident_id`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ehr_store import ResourceRepository, json_loads
from ehr_store.empi import is_golden
from ehr_store.resident_id import RESIDENT_ID_SYSTEM, parse_resident_id
from imaging.mapping import StudySnapshot

Json = dict[str, Any]


@dataclass(frozen=True)
class SubjectLink:
    """`subject` (`Patient/<id>`) when certain, else None with the `reason` for review."""

    subject: str | None
    reason: str
    method: str = ""


def mrn_system(issuer: str, configured: Mapping[str, str]) -> str:
    """Identifier.system of a facility's MRNs (the HL7 mapping's scheme unless configured)."""
    if issuer in configured:
        return configured[issuer]
    if issuer.startswith(("urn:", "http:", "https:")):
        return issuer
    return f"urn:qyhie:facility:{issuer}:mrn"


def _patients(repo: ResourceRepository, system: str, value: str) -> list[Json]:
    result = repo.search("Patient", [("identifier", f"{system}|{value}"), ("_count", "20")])
    return [json_loads(m.content) for m in result.matches if not m.deleted]


def _resident_of(patient: Json) -> str:
    """The golden record's id of a Patient (its own id when golden or not yet linked)."""
    if is_golden(patient):
        return str(patient["id"])
    for link in patient.get("link", []):
        ref = str((link.get("other") or {}).get("reference", ""))
        if link.get("type") == "refer" and ref.startswith("Patient/"):
            return ref.split("/", 1)[1]
    return str(patient["id"])


def _dicom_date(fhir_date: str) -> str:
    return fhir_date.replace("-", "")[:8]


def link_subject(
    repo: ResourceRepository, snap: StudySnapshot, mrn_systems: Mapping[str, str]
) -> SubjectLink:
    """See module docstring. Never raises for missing data: uncertainty is a review reason."""
    by_mrn: list[Json] = []
    if snap.patient_id and snap.issuer:
        found = _patients(repo, mrn_system(snap.issuer, mrn_systems), snap.patient_id)
        by_mrn = [p for p in found if not is_golden(p)]
        if len(by_mrn) > 1:
            return SubjectLink(None, f"{len(by_mrn)} Patients carry this MRN of {snap.issuer}")
    ids = sorted({r.value for r in map(parse_resident_id, snap.other_patient_ids) if r.valid})
    if len(ids) > 1:
        return SubjectLink(None, "OtherPatientIDs holds more than one 身份证号")
    residents: set[str] = set()
    holders: list[Json] = []
    if ids:
        holders = _patients(repo, RESIDENT_ID_SYSTEM, ids[0])
        residents = {_resident_of(p) for p in holders}
        if len(residents) > 1:
            return SubjectLink(None, "the 身份证号 belongs to more than one resident record")
    if by_mrn and residents and _resident_of(by_mrn[0]) not in residents:
        return SubjectLink(None, "the MRN and the 身份证号 name different residents")
    if by_mrn:
        chosen, method = by_mrn[0], "mrn"
    elif residents:
        resident = next(iter(residents))
        chosen = next((p for p in holders if p["id"] == resident), holders[0])
        method = "resident-id"
    elif not snap.patient_id and not ids:
        return SubjectLink(None, "the study has no PatientID and no 身份证号")
    elif not snap.issuer and not ids:
        return SubjectLink(None, "PatientID without IssuerOfPatientID and no 身份证号")
    else:
        return SubjectLink(None, "no Patient with this MRN or 身份证号 (yet)")
    born = str(chosen.get("birthDate", ""))
    if snap.patient_birth_date and born and _dicom_date(born) != snap.patient_birth_date:
        return SubjectLink(None, "PatientBirthDate disagrees with the Patient record")
    return SubjectLink(f"Patient/{chosen['id']}", "", method)


def find_order(repo: ResourceRepository, accession: str, issuer: str, subject: str) -> str | None:
    """`ServiceRequest/<id>` whose ACSN identifier is `accession` (system
    `urn:qyhie:facility:<issuer>:accession`, any facility when `issuer` is empty) and whose
    subject is the same resident as `subject` (`Patient/<id>`); None otherwise."""
    if not accession:
        return None
    token = f"urn:qyhie:facility:{issuer}:accession|{accession}" if issuer else accession
    result = repo.search("ServiceRequest", [("identifier", token), ("_count", "20")])
    candidates = [json_loads(m.content) for m in result.matches if not m.deleted]
    if not candidates:
        return None
    refs = {subject.split("/", 1)[1]} | {
        str((o.get("subject") or {}).get("reference", "")).partition("/")[2] for o in candidates
    }
    stored = repo.read_many([("Patient", i) for i in refs if i])
    resident = {pid: _resident_of(json_loads(s.content)) for (_, pid), s in stored.items() if not s.deleted}
    mine = resident.get(subject.split("/", 1)[1])
    for order in candidates:
        pid = str((order.get("subject") or {}).get("reference", "")).partition("/")[2]
        if mine is not None and resident.get(pid) == mine:
            return f"ServiceRequest/{order['id']}"
    return None
