"""Orthanc's view of a study -> FHIR R4B ImagingStudy (and the DICOMweb Endpoint). Pure.

`StudySnapshot.from_orthanc(study)` reads `OrthancClient.study()`'s JSON (Orthanc decodes
every character set to UTF-8). `imaging_study(snapshot, ...)` builds one ImagingStudy per
StudyInstanceUID (FHIR R4B ImagingStudy; identifier `urn:dicom:uid` + `urn:oid:<UID>`,
the accession number as an ACSN identifier, series with modality, body site, instance counts
and every instance (`series.instance`: SOPInstanceUID, SOPClassUID, InstanceNumber), `started`
from StudyDate/StudyTime and TimezoneOffsetFromUTC).

Every instance is listed so that any change of a study's instance set (one deleted and another
added in the same series keeps the counts) changes the ImagingStudy and so its version, which
the nginx cache key follows (docs/imaging.md "Caching").

Ids are derived from the UID (`study_resource_id`), so indexing a study twice updates the same
resource and two studies never share one.

May import: the standard library, `imaging.charset`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from imaging.charset import PersonNameGroups

Json = dict[str, Any]
DICOM_UID_SYSTEM = "urn:dicom:uid"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
SNOMED = "http://snomed.info/sct"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
BODY_PART_SYSTEM = "urn:qyhie:dicom:body-part-examined"
URI_SYSTEM = "urn:ietf:rfc:3986"  # ImagingStudy.series.instance.sopClass: urn:oid:<SOPClassUID>
ENDPOINT_ID = "dicomweb"
VIEWER_ENDPOINT_ID = "dicom-viewer"
CONNECTION_TYPE = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
IMAGING_TAG_SYSTEM = "urn:qyhie:imaging"
BODY_PARTS = {  # DICOM PS3.16 CID 4031 -> SNOMED CT
    "CHEST": ("51185008", "Thoracic structure"),
    "ABDOMEN": ("113345001", "Abdominal structure"),
    "HEAD": ("69536005", "Head structure"),
    "SKULL": ("89546000", "Bone structure of cranium"),
    "BRAIN": ("12738006", "Brain structure"),
    "PELVIS": ("12921003", "Pelvic structure"),
    "KNEE": ("72696002", "Knee region structure"),
    "HAND": ("85562004", "Hand structure"),
    "BREAST": ("76752008", "Breast structure"),
    "HEART": ("80891009", "Heart structure"),
    "LIVER": ("10200004", "Liver structure"),
    "SPINE": ("421060004", "Spinal column structure"),
    "CSPINE": ("122494005", "Cervical spine structure"),
    "LSPINE": ("122496007", "Lumbar spine structure"),
    "NECK": ("45048000", "Neck structure"),
}


def study_resource_id(study_uid: str) -> str:
    """The ImagingStudy id of a StudyInstanceUID: `dcm-` + 40 hex digits of its SHA-1."""
    return "dcm-" + hashlib.sha1(study_uid.encode("ascii", "replace")).hexdigest()


def study_identifier(study_uid: str) -> Json:
    """ImagingStudy.identifier for the StudyInstanceUID (FHIR R4B ImagingStudy notes)."""
    return {"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{study_uid}"}


@dataclass(frozen=True)
class InstanceSnapshot:
    """One instance: SOPInstanceUID, SOPClassUID, InstanceNumber (None when absent)."""

    uid: str
    sop_class: str
    number: int | None


@dataclass(frozen=True)
class SeriesSnapshot:
    uid: str
    modality: str
    number: int | None
    description: str
    body_part: str
    instances: int
    instance_list: tuple[InstanceSnapshot, ...] = ()


@dataclass(frozen=True)
class StudySnapshot:
    """What the bridge needs of one study, decoded to text."""

    orthanc_id: str
    study_uid: str
    patient_id: str
    issuer: str
    other_patient_ids: tuple[str, ...]
    patient_name: PersonNameGroups
    patient_birth_date: str
    accession: str
    description: str
    study_date: str
    study_time: str
    timezone_offset: str
    series: tuple[SeriesSnapshot, ...] = field(default_factory=tuple)

    @classmethod
    def from_orthanc(cls, study: Json) -> StudySnapshot:
        """From `OrthancClient.study()` JSON. With `"InstanceDetails"` (Orthanc's expanded
        instances) and `"SopClasses"` ({SOPInstanceUID: SOPClassUID}) each series lists its
        instances; an instance without a known SOP class (deleted in Orthanc meanwhile) is
        left out of the list and the count. Without them, only counts."""
        main = study.get("MainDicomTags", {})
        patient = study.get("PatientMainDicomTags", {})
        tags = study.get("InstanceTags", {})
        others = str(tags.get("OtherPatientIDs") or patient.get("OtherPatientIDs") or "")
        listed = _instances_by_series(study)
        series = tuple(
            SeriesSnapshot(
                uid=str(s["MainDicomTags"].get("SeriesInstanceUID", "")),
                modality=str(s["MainDicomTags"].get("Modality", "")).strip() or "OT",
                number=_int(s["MainDicomTags"].get("SeriesNumber")),
                description=str(s["MainDicomTags"].get("SeriesDescription", "")).strip(),
                body_part=str(s["MainDicomTags"].get("BodyPartExamined", "")).strip().upper(),
                instances=len(s.get("Instances", [])) if listed is None else len(listed.get(s.get("ID"), ())),
                instance_list=() if listed is None else listed.get(s.get("ID"), ()),
            )
            for s in study.get("SeriesDetails", [])
        )
        return cls(
            orthanc_id=str(study.get("ID", "")),
            study_uid=str(main.get("StudyInstanceUID", "")),
            patient_id=str(patient.get("PatientID", "")).strip(),
            issuer=str(tags.get("IssuerOfPatientID", "")).strip(),
            other_patient_ids=tuple(v.strip() for v in others.split("\\") if v.strip()),
            patient_name=PersonNameGroups.parse(str(patient.get("PatientName", ""))),
            patient_birth_date=str(patient.get("PatientBirthDate", "")).strip(),
            accession=str(main.get("AccessionNumber", "")).strip(),
            description=str(main.get("StudyDescription", "")).strip(),
            study_date=str(main.get("StudyDate", "")).strip(),
            study_time=str(main.get("StudyTime", "")).strip(),
            timezone_offset=str(tags.get("TimezoneOffsetFromUTC", "")).strip(),
            series=tuple(sorted(series, key=lambda s: (s.number is None, s.number or 0, s.uid))),
        )


def _instances_by_series(study: Json) -> dict[str, tuple[InstanceSnapshot, ...]] | None:
    """{Orthanc series id: its instances, by InstanceNumber then UID}; None without details."""
    details, classes = study.get("InstanceDetails"), study.get("SopClasses")
    if details is None or classes is None:
        return None
    out: dict[str, list[InstanceSnapshot]] = {}
    for i in details:
        uid = str(i.get("MainDicomTags", {}).get("SOPInstanceUID", "")).strip()
        if uid and classes.get(uid):
            number = _int(i["MainDicomTags"].get("InstanceNumber"))
            out.setdefault(str(i.get("ParentSeries", "")), []).append(
                InstanceSnapshot(uid, str(classes[uid]), number)
            )
    return {
        k: tuple(sorted(v, key=lambda i: (i.number is None, i.number or 0, i.uid))) for k, v in out.items()
    }


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def started(date: str, time: str, offset: str, default_offset: str = "+08:00") -> str | None:
    """DICOM DA/TM (+ TimezoneOffsetFromUTC `+HHMM`) -> FHIR dateTime, or None without a date."""
    if len(date) != 8 or not date.isdigit():
        return None
    day = f"{date[:4]}-{date[4:6]}-{date[6:]}"
    digits = time.split(".")[0]
    if len(digits) < 4 or not digits.isdigit():
        return day
    seconds = digits[4:6] if len(digits) >= 6 else "00"
    zone = f"{offset[:3]}:{offset[3:5]}" if len(offset) == 5 and offset[0] in "+-" else default_offset
    return f"{day}T{digits[:2]}:{digits[2:4]}:{seconds}{zone}"


def _body_site(part: str) -> Json | None:
    if not part:
        return None
    if part in BODY_PARTS:
        code, display = BODY_PARTS[part]
        return {"system": SNOMED, "code": code, "display": display}
    return {"system": BODY_PART_SYSTEM, "code": part}


def _series(s: SeriesSnapshot) -> Json:
    out: Json = {
        "uid": s.uid,
        "modality": {"system": DCM, "code": s.modality},
        "numberOfInstances": s.instances,
    }
    if s.number is not None and s.number >= 0:
        out["number"] = s.number
    if s.description:
        out["description"] = s.description
    site = _body_site(s.body_part)
    if site:
        out["bodySite"] = site
    if s.instance_list:
        out["instance"] = [_instance(i) for i in s.instance_list]
    return out


def _instance(i: InstanceSnapshot) -> Json:
    """ImagingStudy.series.instance (FHIR R4B): uid, sopClass (urn:ietf:rfc:3986 Coding of
    `urn:oid:<SOPClassUID>`), number (unsignedInt)."""
    out: Json = {"uid": i.uid, "sopClass": {"system": URI_SYSTEM, "code": f"urn:oid:{i.sop_class}"}}
    if i.number is not None and i.number >= 0:
        out["number"] = i.number
    return out


def imaging_study(
    snap: StudySnapshot,
    subject: str,
    based_on: str | None = None,
    *,
    pending_order: bool = False,
    viewer: bool = False,
) -> Json:
    """The ImagingStudy of `snap` for `subject` (`Patient/<id>`), optionally `basedOn` an
    order (`ServiceRequest/<id>`); `pending_order` tags it for a later order link; `viewer`
    adds `Endpoint/dicom-viewer` (the web viewer) after `Endpoint/dicomweb`."""
    resource: Json = {
        "resourceType": "ImagingStudy",
        "id": study_resource_id(snap.study_uid),
        "meta": {},
        "identifier": [study_identifier(snap.study_uid)],
        "status": "available",
        "subject": {"reference": subject},
        "endpoint": [{"reference": f"Endpoint/{e}"} for e in (ENDPOINT_ID, VIEWER_ENDPOINT_ID)[: 1 + viewer]],
        "numberOfSeries": len(snap.series),
        "numberOfInstances": sum(s.instances for s in snap.series),
    }
    if snap.issuer:
        resource["meta"]["source"] = f"urn:qyhie:facility:{snap.issuer}"
    if pending_order:
        resource["meta"]["tag"] = [{"system": IMAGING_TAG_SYSTEM, "code": "order-pending"}]
    if not resource["meta"]:
        del resource["meta"]
    if snap.accession:
        resource["identifier"].append(
            {
                "use": "official",
                "type": {"coding": [{"system": V2_0203, "code": "ACSN"}]},
                "system": f"urn:qyhie:facility:{snap.issuer or 'unknown'}:accession",
                "value": snap.accession,
            }
        )
    if based_on:
        resource["basedOn"] = [{"reference": based_on}]
    modalities = sorted({s.modality for s in snap.series})
    if modalities:
        resource["modality"] = [{"system": DCM, "code": m} for m in modalities]
    when = started(snap.study_date, snap.study_time, snap.timezone_offset)
    if when:
        resource["started"] = when
    if snap.description:
        resource["description"] = snap.description
    if snap.series:
        resource["series"] = [_series(s) for s in snap.series]
    return resource


def dicomweb_endpoint(address: str) -> Json:
    """The Endpoint (connectionType dicom-wado-rs) through which the exchange serves images."""
    return {
        "resourceType": "Endpoint",
        "id": ENDPOINT_ID,
        "status": "active",
        "connectionType": {"system": CONNECTION_TYPE, "code": "dicom-wado-rs"},
        "name": "Qingyuan HIE DICOMweb (QIDO-RS, WADO-RS, STOW-RS)",
        "payloadType": [{"text": "DICOM"}],
        "payloadMimeType": ["application/dicom", "application/dicom+json"],
        "address": address,
    }


def viewer_endpoint(address: str) -> Json:
    """The Endpoint of the exchange's web viewer: IHE Invoke Image Display (connectionType
    `ihe-iid`); a client opens `<address>?requestType=STUDY&studyUID=<uid>`."""
    return {
        "resourceType": "Endpoint",
        "id": VIEWER_ENDPOINT_ID,
        "status": "active",
        "connectionType": {"system": CONNECTION_TYPE, "code": "ihe-iid"},
        "name": "Qingyuan HIE web viewer (IHE Invoke Image Display, requestType=STUDY)",
        "payloadType": [{"text": "DICOM"}],
        "payloadMimeType": ["text/html"],
        "address": address,
    }
