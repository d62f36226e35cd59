"""VXU^V04 → Immunization per RXA (HL7 v2-to-FHIR IG RXA → Immunization).

May import: the standard library, `adapters.hl7v2.*`, `adapters.hl7v2.mapping.*`.
"""

from __future__ import annotations

from typing import Any

from adapters.hl7v2 import datatypes as dt
from adapters.hl7v2.errors import DATA_TYPE_ERROR, Hl7ContentError
from adapters.hl7v2.mapping.common import encounter, patient, practitioner
from adapters.hl7v2.mapping.context import Mapped, MappingContext
from adapters.hl7v2.quantity import quantity

Json = dict[str, Any]
_STATUS = {"CP": "completed", "PA": "completed", "RE": "not-done", "NA": "not-done"}


def map_vxu(ctx: MappingContext) -> Mapped:
    """VXU^V04 → Patient, Immunization(s). Raises: Hl7ContentError 100/101/102."""
    out = Mapped()
    pid = ctx.segment("PID")
    assert pid is not None
    pat_id = patient(ctx, pid, out)
    enc_id = encounter(ctx, ctx.message.first("PV1"), f"Patient/{pat_id}", out)
    orc = None
    rxas = ctx.message.all("RXA")
    if not rxas:
        ctx.segment("RXA")
    for seg in ctx.message.segments:
        if seg.name == "ORC":
            orc = seg
        if seg.name != "RXA":
            continue
        vaccine = ctx.concept(seg, 5, "vaccine")
        if vaccine is None:
            ctx.require(seg, 5, "administered code")
        ctx.require(seg, 3, "date/time start of administration")
        when = ctx.ts(seg, 3)
        order = (orc.get(3) or orc.get(2)) if orc else ""
        key = order or f"{pat_id}-{seg.get(3)}-{seg.get(5)}"
        res: Json = {
            "resourceType": "Immunization",
            "id": dt.fhir_id(ctx.facility, "imm", key),
            "meta": ctx.meta(),
            "status": _STATUS.get(seg.get(20), "completed"),
            "vaccineCode": vaccine,
            "patient": {"reference": f"Patient/{pat_id}"},
            "occurrenceDateTime": when,
            "primarySource": seg.get(9) in ("", "00"),
        }
        if order:
            res["identifier"] = [{"system": f"urn:qyhie:facility:{ctx.facility}:filler", "value": order}]
        if enc_id:
            res["encounter"] = {"reference": f"Encounter/{enc_id}"}
        amount = seg.get(6)
        if amount and amount != "999":
            try:
                res["doseQuantity"] = quantity(amount, seg.get(7))
            except ValueError as exc:
                raise Hl7ContentError(DATA_TYPE_ERROR, f"RXA-6: {exc}", seg.location(6)) from None
        if seg.get(15):
            res["lotNumber"] = seg.get(15)
        expiry = ctx.date(seg, 16)
        if expiry:
            res["expirationDate"] = expiry
        if seg.get(17, 2) or seg.get(17):
            res["manufacturer"] = {"display": seg.get(17, 2) or seg.get(17)}
        performer = practitioner(ctx, ctx.components(seg, 10), out) if seg.get(10) else None
        if performer:
            res["performer"] = [{"actor": performer}]
        if res["status"] == "not-done":
            reason = ctx.concept(seg, 18)
            if reason:
                res["statusReason"] = reason
        out.add(res)
    return out
