"""Segment maps shared by the message families (HL7 v2-to-FHIR IG segment maps):
PID → Patient, PV1 → Encounter, XCN → Practitioner, the sending facility → Organization,
and one Provenance per message.

May import: the standard library, `adapters.hl7v2.{datatypes,er7,errors}`,
`adapters.hl7v2.mapping.context`.
"""

from __future__ import annotations

from typing import Any

from adapters.hl7v2 import datatypes as dt
from adapters.hl7v2.er7 import Segment
from adapters.hl7v2.errors import REQUIRED_FIELD_MISSING, Hl7ContentError
from adapters.hl7v2.mapping.context import Mapped, MappingContext

Json = dict[str, Any]

_GENDER = {
    "M": "male",
    "F": "female",
    "O": "other",
    "A": "other",
    "U": "unknown",
    "N": "unknown",
    "男": "male",
    "女": "female",
    "1": "male",
    "2": "female",
    "0": "unknown",
    "9": "unknown",
}
_CLASS = {
    "O": ("AMB", "ambulatory"),
    "门诊": ("AMB", "ambulatory"),
    "R": ("AMB", "ambulatory"),
    "I": ("IMP", "inpatient encounter"),
    "住院": ("IMP", "inpatient encounter"),
    "B": ("IMP", "inpatient encounter"),
    "E": ("EMER", "emergency"),
    "急诊": ("EMER", "emergency"),
    "P": ("PRENC", "pre-admission"),
}
_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_ADMINISTRATIVE_GENDER = "http://hl7.org/fhir/administrative-gender"
_PID_ELEMENTS = {
    5: "name",
    7: "birthDate",
    8: "gender",
    11: "address",
    13: "telecom",
    14: "telecom",
    16: "maritalStatus",
    29: "deceasedDateTime",
}


def organization(ctx: MappingContext, out: Mapped) -> str:
    """The sending facility as an Organization (id ``org-<MSH-4.1>``); returns its reference."""
    org_id = dt.fhir_id("org", ctx.facility)
    out.add(
        {
            "resourceType": "Organization",
            "id": org_id,
            "meta": ctx.meta(),
            "active": True,
            "identifier": [{"system": "urn:qyhie:facility", "value": ctx.facility}],
            "name": ctx.facility_name,
        }
    )
    return f"Organization/{org_id}"


def practitioner(ctx: MappingContext, comps: list[str], out: Mapped) -> Json | None:
    """XCN → a Practitioner (id from facility + XCN.1) and a Reference to it (display = name)."""
    code = dt.c(comps, 1)
    name = dt.human_name(comps[1:]) if len(comps) > 1 else None
    if not code and not name:
        return None
    display = name["text"] if name else code
    if not code:
        return {"display": display}
    prac_id = dt.fhir_id(ctx.facility, "prac", code)
    res: Json = {
        "resourceType": "Practitioner",
        "id": prac_id,
        "meta": ctx.meta(),
        "identifier": [{"system": f"urn:qyhie:facility:{ctx.facility}:staff", "value": code}],
    }
    if name:
        res["name"] = [name]
    out.add(res)
    return {"reference": f"Practitioner/{prac_id}", "display": display}


def patient_id(ctx: MappingContext, pid: Segment, field: int = 3) -> tuple[str, list[Json]]:
    """The source Patient id (facility + first MRN in PID-3) and all PID-3/PID-19 identifiers.

    Raises: Hl7ContentError 101 when PID-3 has no usable identifier.
    """
    idents: list[Json] = []
    for comps in ctx.all_components(pid, field):
        ident = dt.identifier(comps, ctx.facility, ctx.mrn_system)
        if ident:
            idents.append(ident)
    if field == 3 and pid.get(19) and pid.get(19) != '""':
        rid = dt.resident_identifier(pid.get(19))
        if all(i.get("value") != rid["value"] for i in idents):
            idents.append(rid)
    local = [i for i in idents if i["type"]["coding"][0]["code"] != "NNCHN"]
    if local:
        return dt.fhir_id(ctx.facility, local[0]["value"]), idents
    if idents:  # only a 身份证号: one source Patient per facility and number
        return dt.fhir_id(ctx.facility, "rid", idents[0]["value"]), idents
    raise Hl7ContentError(
        REQUIRED_FIELD_MISSING,
        f"{pid.name}-{field} (patient identifier list) is required",
        pid.location(field),
    )


def patient(ctx: MappingContext, pid: Segment, out: Mapped) -> str:
    """PID → source Patient (merged into the stored one); returns its id.

    Raises: Hl7ContentError 101 (no PID-3), 102 (bad PID-7/PID-29 date).
    """
    pat_id, idents = patient_id(ctx, pid)
    for ident in idents:
        if ident.get("system") == dt.INVALID_RESIDENT_ID_SYSTEM:
            out.warnings.append(
                (
                    f"身份证号 kept but flagged, not used to link: {ident['extension'][0]['valueString']}",
                    pid.location(3 if ident["value"] in pid.raw(3) else 19),
                )
            )
    res: Json = {
        "resourceType": "Patient",
        "id": pat_id,
        "meta": ctx.meta(),
        "active": True,
        "identifier": idents,
        "managingOrganization": {"reference": organization(ctx, out)},
    }
    names = [n for n in (dt.human_name(x) for x in ctx.all_components(pid, 5)) if n]
    if names:
        res["name"] = names
    birth = ctx.date(pid, 7)
    if birth:
        res["birthDate"] = birth
    gender = _GENDER.get(pid.get(8).upper())
    if gender:
        res["gender"] = gender
    extensions = _coded_extensions(ctx, pid)
    if extensions:
        res["extension"] = extensions
    marital = ctx.table_concept(pid, 16, "HL70002")
    if marital:
        res["maritalStatus"] = marital
    addresses = [a for a in (dt.address(x) for x in ctx.all_components(pid, 11)) if a]
    if addresses:
        res["address"] = addresses
    telecom = [
        t
        for t in (dt.contact_point(x) for x in ctx.all_components(pid, 13) + ctx.all_components(pid, 14))
        if t
    ]
    if telecom:
        res["telecom"] = telecom
    deceased = ctx.ts(pid, 29)
    if deceased:
        res["deceasedDateTime"] = deceased
    elif pid.get(30).upper() == "Y":
        res["deceasedBoolean"] = True
    nulled = frozenset(el for n, el in _PID_ELEMENTS.items() if pid.is_null(n) and el not in res)
    out.add(res, merge=True, nulled=nulled)
    out.source_patients.append(pat_id)
    return pat_id


def _coded_extensions(ctx: MappingContext, pid: Segment) -> list[Json]:
    """PID-8 sex → `SEX_EXT` (GB/T 2261.1 added by the terminology service) and PID-22 ethnic
    group → `ETHNICITY_EXT` (GB/T 3304), each a CodeableConcept keeping the code as sent.
    The sex extension is only written when the terminology added a coding other than
    administrative-gender (`Patient.gender` already says that much)."""
    out: list[Json] = []
    sex = ctx.table_code(pid.get(8), "HL70001")
    if sex and any(c.get("system") != _ADMINISTRATIVE_GENDER for c in sex["coding"][1:]):
        sex["coding"] = [c for c in sex["coding"] if c.get("system") != _ADMINISTRATIVE_GENDER]
        out.append({"url": dt.SEX_EXT, "valueCodeableConcept": sex})
    ethnicity = ctx.table_concept(pid, 22, "HL70189")
    if ethnicity:
        out.append({"url": dt.ETHNICITY_EXT, "valueCodeableConcept": ethnicity})
    return out


def _patient_class(ctx: MappingContext, pclass: str) -> tuple[Json, Json | None]:
    """PV1-2 → (Encounter.class Coding, the `PATIENT_CLASS_EXT` extension or None): the
    terminology's v3 ActCode when it maps the code, else the built-in table (O/I/E, 门诊/住院/急诊)."""
    sent = ctx.table_code(pclass, "HL70004")
    act = next((c for c in (sent or {}).get("coding", [])[1:] if c.get("system") == _ACT_CODE), None)
    if act is None:
        code, display = _CLASS.get(pclass.upper() if pclass.isascii() else pclass, ("AMB", "ambulatory"))
        act = {"system": _ACT_CODE, "code": code, "display": display}
    if ctx.terminology is None or sent is None:
        return act, None
    return act, {"url": dt.PATIENT_CLASS_EXT, "valueCodeableConcept": sent}


def encounter(
    ctx: MappingContext, pv1: Segment | None, patient_ref: str, out: Mapped, status: str | None = None
) -> str | None:
    """PV1 → Encounter (id from facility + PV1-19 visit number); None when PV1 is absent or
    PV1-2 is ``N`` (not applicable). Class from PV1-2 (O/I/E and 门诊/住院/急诊)."""
    if pv1 is None:
        return None
    pclass = pv1.get(2)
    if pclass in ("", "N", '""'):
        return None
    visit = pv1.get(19)
    enc_id = (
        dt.fhir_id(ctx.facility, "enc", visit) if visit else dt.fhir_id(ctx.facility, "enc", ctx.control_id)
    )
    act, class_ext = _patient_class(ctx, pclass)
    res: Json = {
        "resourceType": "Encounter",
        "id": enc_id,
        "meta": ctx.meta(),
        "status": status or "unknown",
        "class": act,
        "subject": {"reference": patient_ref},
        "serviceProvider": {"reference": organization(ctx, out)},
    }
    if class_ext:
        res["extension"] = [class_ext]
    if visit:
        res["identifier"] = [
            {"use": "official", "system": f"urn:qyhie:facility:{ctx.facility}:visit", "value": visit}
        ]
    start, end = ctx.ts(pv1, 44), ctx.ts(pv1, 45)
    if start or end:
        res["period"] = {k: v for k, v in (("start", start), ("end", end)) if v}
    location = pv1.get(3)
    if location:
        res["location"] = [{"location": {"display": location}}]
    participants = []
    for n, role in ((7, "ATND"), (8, "REF"), (9, "CON"), (17, "ADM")):
        for comps in ctx.all_components(pv1, n):
            ref = practitioner(ctx, comps, out)
            if ref:
                participants.append(
                    {
                        "type": [
                            {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                        "code": role,
                                    }
                                ]
                            }
                        ],
                        "individual": ref,
                    }
                )
    if participants:
        res["participant"] = participants
    # Merged into the stored Encounter: an ORU/ORM/VXU/MDM/DFT (no `status` given) only
    # supplies a default status, an ADT event's status is authoritative.
    out.add(res, merge=True, defaults=frozenset() if status else frozenset({"status"}))
    return enc_id


def provenance(ctx: MappingContext, out: Mapped) -> None:
    """One Provenance per message: targets, received time, source facility, MSH-10."""
    targets = [
        {"reference": f"{r.key[0]}/{r.key[1]}"}
        for r in out.resources
        if r.key[0] not in ("Organization", "Practitioner")
    ]
    if not targets:
        return
    org = organization(ctx, out)
    msh = ctx.message.msh
    out.add(
        {
            "resourceType": "Provenance",
            "id": dt.fhir_id("msg", ctx.facility, msh.get(3), ctx.control_id),
            "meta": ctx.meta(),
            "target": targets,
            "recorded": ctx.received_at.isoformat(),
            "activity": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "UPDATE"}
                ],
                "text": ctx.message_code,
            },
            "agent": [
                {
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                "code": "author",
                            }
                        ]
                    },
                    "who": {"reference": org, "display": ctx.facility_name},
                }
            ],
            "entity": [
                {
                    "role": "source",
                    "what": {
                        "identifier": {
                            "system": f"urn:qyhie:facility:{ctx.facility}:msh-10",
                            "value": ctx.control_id,
                        },
                        "display": f"HL7 v2 {ctx.message_code} {ctx.control_id}",
                    },
                }
            ],
        }
    )
