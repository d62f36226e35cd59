"""ORM^O01 / OML^O21 → ServiceRequest per ORC/OBR pair (HL7 v2-to-FHIR IG ORC, OBR maps).

The accession number (OBR-18, else OBR-20 / ORC-3) is kept as an identifier of type ACSN
so the imaging bridge can find the order by it.

May import: the standard library, `adapters.hl7v2.*`, `adapters.hl7v2.mapping.*`.
"""

from __future__ import annotations

from typing import Any

from adapters.hl7v2 import datatypes as dt
from adapters.hl7v2.er7 import Segment
from adapters.hl7v2.mapping.common import encounter, patient, practitioner
from adapters.hl7v2.mapping.context import Mapped, MappingContext

Json = dict[str, Any]

_STATUS_FROM_ORC1 = {
    "NW": "active",
    "XO": "active",
    "SC": None,
    "CA": "revoked",
    "DC": "revoked",
    "OC": "revoked",
    "CR": "revoked",
    "HD": "on-hold",
    "RL": "active",
    "OK": "active",
}
_STATUS_FROM_ORC5 = {
    "CM": "completed",
    "CA": "revoked",
    "DC": "revoked",
    "HD": "on-hold",
    "IP": "active",
    "SC": "active",
    "A": "active",
    "ER": "entered-in-error",
}
_PRIORITY = {"S": "stat", "A": "asap", "R": "routine", "P": "routine", "T": "urgent"}


def map_order(ctx: MappingContext) -> Mapped:
    """ORM^O01 / OML^O21 → Patient, Encounter, ServiceRequest(s).
    Raises: Hl7ContentError 100 (no PID/ORC), 101 (no placer/filler number), 102."""
    out = Mapped()
    pid = ctx.segment("PID")
    assert pid is not None
    pat_ref = f"Patient/{patient(ctx, pid, out)}"
    enc_id = encounter(ctx, ctx.message.first("PV1"), pat_ref, out)
    orc: Segment | None = None
    for seg in ctx.message.segments:
        if seg.name == "ORC":
            orc = seg
        elif seg.name == "OBR":
            out.add(_service_request(ctx, orc, seg, pat_ref, enc_id, out))
    if not ctx.message.first("OBR"):
        ctx.segment("OBR")
    return out


def _service_request(
    ctx: MappingContext, orc: Segment | None, obr: Segment, pat_ref: str, enc_id: str | None, out: Mapped
) -> Json:
    placer = obr.get(2) or (orc.get(2) if orc else "")
    filler = obr.get(3) or (orc.get(3) if orc else "")
    accession = obr.get(18) or obr.get(20)
    key = placer or filler or accession
    if not key:
        ctx.require(orc or obr, 2, "placer order number")
    res: Json = {
        "resourceType": "ServiceRequest",
        "id": dt.fhir_id(ctx.facility, "sr", key),
        "meta": ctx.meta(),
        "status": _status(orc),
        "intent": "order",
        "subject": {"reference": pat_ref},
    }
    idents = []
    for code, kind, value in (
        ("PLAC", "placer", placer),
        ("FILL", "filler", filler),
        ("ACSN", "accession", accession),
    ):
        if value:
            idents.append(
                {
                    "use": "official" if code == "ACSN" else "usual",
                    "type": {"coding": [{"system": dt.V2_0203, "code": code}]},
                    "system": f"urn:qyhie:facility:{ctx.facility}:{kind}",
                    "value": value,
                }
            )
    res["identifier"] = idents
    concept = ctx.concept(obr, 4, "procedure")
    if concept is None:
        ctx.require(obr, 4, "universal service identifier")
    res["code"] = concept
    section = obr.get(24)
    if section:
        res["category"] = [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": section}]}
        ]
    priority = _PRIORITY.get(obr.get(27, 6) or (orc.get(7, 6) if orc else ""))
    if priority:
        res["priority"] = priority
    if enc_id:
        res["encounter"] = {"reference": f"Encounter/{enc_id}"}
    occurrence = ctx.ts(obr, 7) or ctx.ts(obr, 6)
    if occurrence:
        res["occurrenceDateTime"] = occurrence
    authored = ctx.ts(orc, 9) if orc else None
    if authored and "T" in authored:
        res["authoredOn"] = authored
    requester = None
    for seg, n in ((orc, 12), (obr, 16)):
        if seg is not None and requester is None:
            comps = ctx.components(seg, n)
            requester = practitioner(ctx, comps, out) if comps else None
    if requester:
        res["requester"] = requester
    reason = ctx.concept(obr, 31)
    if reason:
        res["reasonCode"] = [reason]
    return res


def _status(orc: Segment | None) -> str:
    if orc is None:
        return "active"
    return _STATUS_FROM_ORC5.get(orc.get(5)) or _STATUS_FROM_ORC1.get(orc.get(1)) or "active"
