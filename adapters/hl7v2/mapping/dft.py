"""DFT^P03 → ChargeItem per FT1 (registration and consultation fees; HL7 v2-to-FHIR IG FT1).

May import: the standard library, `adapters.hl7v2.*`, `adapters.hl7v2.mapping.*`.
"""

from __future__ import annotations

from typing import Any

from adapters.hl7v2 import datatypes as dt
from adapters.hl7v2.errors import DATA_TYPE_ERROR, Hl7ContentError
from adapters.hl7v2.mapping.common import encounter, organization, patient, practitioner
from adapters.hl7v2.mapping.context import Mapped, MappingContext

Json = dict[str, Any]


def map_dft(ctx: MappingContext) -> Mapped:
    """DFT^P03 → Patient, Encounter, ChargeItem(s). Raises: Hl7ContentError 100/101/102."""
    out = Mapped()
    pid = ctx.segment("PID")
    assert pid is not None
    pat_id = patient(ctx, pid, out)
    enc_id = encounter(ctx, ctx.message.first("PV1"), f"Patient/{pat_id}", out)
    ft1s = ctx.message.all("FT1")
    if not ft1s:
        ctx.segment("FT1")
    for ft1 in ft1s:
        code = ctx.concept(ft1, 7, "charge")
        if code is None:
            ctx.require(ft1, 7, "transaction code")
        key = ft1.get(2) or ft1.get(3) or f"{ctx.control_id}-{ft1.get(1) or ft1.sequence}"
        credit = ft1.get(6).upper() in ("CD", "PY", "AJ")
        res: Json = {
            "resourceType": "ChargeItem",
            "id": dt.fhir_id(ctx.facility, "chg", key),
            "meta": ctx.meta(),
            "status": "not-billable" if credit else "billable",
            "code": code,
            "subject": {"reference": f"Patient/{pat_id}"},
            "identifier": [{"system": f"urn:qyhie:facility:{ctx.facility}:transaction", "value": key}],
            "performingOrganization": {"reference": organization(ctx, out)},
        }
        if enc_id:
            res["context"] = {"reference": f"Encounter/{enc_id}"}
        when = ctx.ts(ft1, 4)
        if when:
            res["occurrenceDateTime"] = when
        try:
            if ft1.get(10):
                res["quantity"] = {"value": dt.decimal(ft1.get(10))}
            amount = ft1.get(11) or ft1.get(12)
            if amount:
                res["priceOverride"] = {"value": dt.decimal(amount), "currency": ft1.get(11, 2) or "CNY"}
        except ValueError as exc:
            raise Hl7ContentError(DATA_TYPE_ERROR, f"FT1: {exc}", ft1.location(11)) from None
        for comps in ctx.all_components(ft1, 20):
            ref = practitioner(ctx, comps, out)
            if ref:
                res["performer"] = [{"actor": ref}]
                break
        out.add(res)
    return out
