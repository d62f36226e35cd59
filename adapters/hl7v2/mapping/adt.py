"""ADT family → FHIR (HL7 v2-to-FHIR IG message maps ADT_A01, ADT_A39):
A01/A02/A03/A04/A05/A06/A07/A08/A11/A13/A28/A31 → Patient, Encounter, Condition (DG1),
AllergyIntolerance (AL1), RelatedPerson (NK1), Coverage (IN1, PID-18); A40 → merge.

May import: the standard library, `adapters.hl7v2.{datatypes,er7}`, `adapters.hl7v2.mapping.*`.
"""

from __future__ import annotations

from typing import Any

from adapters.hl7v2 import datatypes as dt
from adapters.hl7v2.er7 import Segment
from adapters.hl7v2.mapping.common import encounter, patient, patient_id, practitioner
from adapters.hl7v2.mapping.context import Mapped, MappingContext

Json = dict[str, Any]

ADT_EVENTS = ("A01", "A02", "A03", "A04", "A05", "A06", "A07", "A08", "A11", "A13", "A28", "A31")
_ENCOUNTER_STATUS = {
    "A01": "in-progress",
    "A02": "in-progress",
    "A03": "finished",
    "A04": "arrived",
    "A05": "planned",
    "A06": "in-progress",
    "A07": "in-progress",
    "A11": "cancelled",
    "A13": "in-progress",
}
_DG1_VERIFICATION = {"F": "confirmed", "W": "provisional", "A": "provisional"}
_AL1_TYPE = {
    "DA": ("allergy", "medication"),
    "FA": ("allergy", "food"),
    "EA": ("allergy", "environment"),
    "MA": ("allergy", "medication"),
    "AA": ("allergy", "biologic"),
    "PA": ("allergy", "environment"),
    "MC": ("intolerance", "medication"),
    "LA": ("allergy", "environment"),
}
_AL1_SEVERITY = {"SV": ("high", "severe"), "MO": ("low", "moderate"), "MI": ("low", "mild")}
_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def map_adt(ctx: MappingContext, event: str) -> Mapped:
    """An ADT message (not A40) → Mapped. Raises: Hl7ContentError (100–103)."""
    out = Mapped()
    pid = ctx.segment("PID")
    assert pid is not None
    pat_id = patient(ctx, pid, out)
    pat_ref = f"Patient/{pat_id}"
    enc_id = encounter(
        ctx, ctx.segment("PV1", required=False), pat_ref, out, _ENCOUNTER_STATUS.get(event, "unknown")
    )
    for seg in ctx.message.all("DG1"):
        condition(ctx, seg, pat_ref, enc_id, out)
    for seg in ctx.message.all("AL1"):
        allergy(ctx, seg, pat_ref, out)
    for seg in ctx.message.all("NK1"):
        related_person(ctx, seg, pat_ref, out)
    for seg in ctx.message.all("IN1"):
        coverage_in1(ctx, seg, pat_id, out)
    card = pid.get(18)
    in1_cards = {r.resource.get("subscriberId") for r in out.resources if r.key[0] == "Coverage"}
    if card and card != '""' and card not in in1_cards:  # IN1 already describes this card
        coverage_card(ctx, pid, pat_id, out)
    return out


def condition(ctx: MappingContext, seg: Segment, pat_ref: str, enc_id: str | None, out: Mapped) -> None:
    """DG1 → Condition (encounter-diagnosis; verification from DG1-6; id from visit + DG1-3)."""
    code = ctx.concept(seg, 3, "diagnosis")
    if code is None:
        ctx.require(seg, 3, "diagnosis code")
        return
    key = code.get("coding", [{}])[0].get("code") or code.get("text", "")
    cond_id = dt.fhir_id(ctx.facility, "dg", enc_id or pat_ref.split("/")[1], key)
    res: Json = {
        "resourceType": "Condition",
        "id": cond_id,
        "meta": ctx.meta(),
        "code": code,
        "subject": {"reference": pat_ref},
        "clinicalStatus": {"coding": [{"system": _CLINICAL, "code": "active"}]},
        "verificationStatus": {
            "coding": [{"system": _VERIFICATION, "code": _DG1_VERIFICATION.get(seg.get(6), "unconfirmed")}]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "encounter-diagnosis",
                    }
                ]
            }
        ],
    }
    if enc_id:
        res["encounter"] = {"reference": f"Encounter/{enc_id}"}
    onset = ctx.ts(seg, 5)
    if onset:
        res["onsetDateTime"] = onset
    recorded = ctx.ts(seg, 19)
    if recorded:
        res["recordedDate"] = recorded
    for comps in ctx.all_components(seg, 16):
        ref = practitioner(ctx, comps, out)
        if ref:
            res["asserter"] = ref
            break
    out.add(res)


def allergy(ctx: MappingContext, seg: Segment, pat_ref: str, out: Mapped) -> None:
    """AL1 → AllergyIntolerance (type/category from AL1-2, criticality from AL1-4)."""
    code = ctx.concept(seg, 3, "allergen")
    if code is None:
        ctx.require(seg, 3, "allergen code")
        return
    key = code.get("coding", [{}])[0].get("code") or code.get("text", "")
    kind, category = _AL1_TYPE.get(seg.get(2, 1).upper(), ("allergy", None))
    res: Json = {
        "resourceType": "AllergyIntolerance",
        "id": dt.fhir_id(pat_ref.split("/")[1], "al", key),
        "meta": ctx.meta(),
        "patient": {"reference": pat_ref},
        "code": code,
        "type": kind,
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                    "code": "active",
                }
            ]
        },
    }
    if category:
        res["category"] = [category]
    severity = _AL1_SEVERITY.get(seg.get(4, 1).upper())
    if severity:
        res["criticality"] = severity[0]
    reactions = seg.values(5)
    if reactions:
        reaction: Json = {"manifestation": [{"text": r} for r in reactions]}
        if severity:
            reaction["severity"] = severity[1]
        res["reaction"] = [reaction]
    onset = ctx.date(seg, 6)
    if onset:
        res["onsetDateTime"] = onset
    out.add(res)


def related_person(ctx: MappingContext, seg: Segment, pat_ref: str, out: Mapped) -> None:
    """NK1 → RelatedPerson (relationship NK1-3, name NK1-2, address NK1-4, phones NK1-5/6)."""
    names = [n for n in (dt.human_name(x) for x in ctx.all_components(seg, 2)) if n]
    key = seg.get(1) or (names[0]["text"] if names else str(seg.sequence))
    res: Json = {
        "resourceType": "RelatedPerson",
        "id": dt.fhir_id(pat_ref.split("/")[1], "nk", key),
        "meta": ctx.meta(),
        "active": True,
        "patient": {"reference": pat_ref},
    }
    if names:
        res["name"] = names
    rel = ctx.concept(seg, 3)
    if rel:
        res["relationship"] = [rel]
    addresses = [a for a in (dt.address(x) for x in ctx.all_components(seg, 4)) if a]
    if addresses:
        res["address"] = addresses
    telecom = [
        t for t in (dt.contact_point(x) for x in ctx.all_components(seg, 5) + ctx.all_components(seg, 6)) if t
    ]
    if telecom:
        res["telecom"] = telecom
    out.add(res)


def coverage_in1(ctx: MappingContext, seg: Segment, pat_id: str, out: Mapped) -> None:
    """IN1 → Coverage: type IN1-2 (plan), payor IN1-3/IN1-4, subscriberId IN1-36, period IN1-12/13."""
    plan = ctx.concept(seg, 2)
    policy = seg.get(36) or seg.get(49)
    key = policy or (plan or {}).get("coding", [{}])[0].get("code") or seg.get(1) or "1"
    payor = seg.get(4) or seg.get(3) or "unknown"
    res: Json = {
        "resourceType": "Coverage",
        "id": dt.fhir_id(pat_id, "cov", key),
        "meta": ctx.meta(),
        "status": "active",
        "beneficiary": {"reference": f"Patient/{pat_id}"},
        "payor": [{"display": payor}],
    }
    if plan:
        res["type"] = plan
    if policy:
        res["subscriberId"] = policy
        res["identifier"] = [{"system": f"urn:qyhie:facility:{ctx.facility}:insurance", "value": policy}]
    start, end = ctx.date(seg, 12), ctx.date(seg, 13)
    if start or end:
        res["period"] = {k: v for k, v in (("start", start), ("end", end)) if v}
    out.add(res)


def coverage_card(ctx: MappingContext, pid: Segment, pat_id: str, out: Mapped) -> None:
    """PID-18 (insurance card / account number as Chinese HIS send it) → Coverage."""
    number = pid.get(18)
    authority = pid.get(18, 4)
    out.add(
        {
            "resourceType": "Coverage",
            "id": dt.fhir_id(pat_id, "cov", number),
            "meta": ctx.meta(),
            "status": "active",
            "beneficiary": {"reference": f"Patient/{pat_id}"},
            "subscriberId": number,
            "identifier": [{"system": f"urn:qyhie:facility:{ctx.facility}:insurance-card", "value": number}],
            "payor": [{"display": authority or "医保"}],
        }
    )


def map_merge(ctx: MappingContext) -> Mapped:
    """ADT^A40 → survivor Patient (from PID, link `replaces`) and each merged Patient (MRG-1):
    `active=false`, link `replaced-by` the survivor (its data stays reachable through the link).
    Raises: Hl7ContentError 100/101."""
    out = Mapped()
    pid = ctx.segment("PID")
    assert pid is not None
    survivor = patient(ctx, pid, out)
    mrgs = ctx.message.all("MRG")
    if not mrgs:
        ctx.segment("MRG")
    links: list[Json] = []
    for mrg in mrgs:
        old_id, idents = patient_id(ctx, mrg, 1)
        if old_id == survivor:
            continue
        out.add(
            {
                "resourceType": "Patient",
                "id": old_id,
                "meta": ctx.meta(),
                "active": False,
                "identifier": [
                    dict(i, use="old") if i["type"]["coding"][0]["code"] != "NNCHN" else i for i in idents
                ],
                "link": [{"other": {"reference": f"Patient/{survivor}"}, "type": "replaced-by"}],
            },
            merge=True,
        )
        links.append({"other": {"reference": f"Patient/{old_id}"}, "type": "replaces"})
        out.merges.append((survivor, old_id))
    for item in out.resources:
        if item.key == ("Patient", survivor) and links:
            item.resource["link"] = links
    return out
