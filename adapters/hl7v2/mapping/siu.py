"""SIU^S12–S15 → Appointment (HL7 v2-to-FHIR IG SCH/AIS/AIP/AIL → Appointment).

S12 new → booked, S13 rescheduled → booked, S14 modified → booked, S15 cancelled → cancelled.

May import: the standard library, `adapters.hl7v2.*`, `adapters.hl7v2.mapping.*`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from adapters.hl7v2 import datatypes as dt
from adapters.hl7v2.mapping.common import patient, practitioner
from adapters.hl7v2.mapping.context import Mapped, MappingContext

Json = dict[str, Any]
SIU_EVENTS = ("S12", "S13", "S14", "S15")


def map_siu(ctx: MappingContext, event: str) -> Mapped:
    """SIU → Patient, Practitioner(s), Appointment. Raises: Hl7ContentError 100/101/102."""
    out = Mapped()
    sch = ctx.segment("SCH")
    pid = ctx.segment("PID")
    assert sch is not None and pid is not None
    pat_id = patient(ctx, pid, out)
    key = sch.get(1) or sch.get(2)
    if not key:
        ctx.require(sch, 1, "placer appointment id")
    res: Json = {
        "resourceType": "Appointment",
        "id": dt.fhir_id(ctx.facility, "appt", key),
        "meta": ctx.meta(),
        "status": "cancelled" if event == "S15" else "booked",
        "identifier": [{"system": f"urn:qyhie:facility:{ctx.facility}:appointment", "value": key}],
        "participant": [{"actor": {"reference": f"Patient/{pat_id}"}, "status": "accepted"}],
    }
    reason = ctx.concept(sch, 7)
    if reason:
        res["reasonCode"] = [reason]
        res["description"] = reason.get("text") or reason["coding"][0].get("display", "")
    appt_type = ctx.concept(sch, 8)
    if appt_type:
        res["appointmentType"] = appt_type
    ais = ctx.message.first("AIS")
    service = ctx.concept(ais, 3) if ais else None
    if service:
        res["serviceType"] = [service]
    start = ctx.instant(sch, 11, 4) or (ctx.instant(ais, 4) if ais else None)
    end = ctx.instant(sch, 11, 5)
    if start and end:
        res["start"], res["end"] = start, end
    elif start:
        res["start"] = start
        minutes = sch.get(9) or (ais.get(7) if ais else "")
        if minutes.isdigit():
            res["minutesDuration"] = int(minutes)
    for aip in ctx.message.all("AIP"):
        ref = practitioner(ctx, ctx.components(aip, 3), out)
        if ref:
            res["participant"].append({"actor": ref, "status": "accepted"})
    for ail in ctx.message.all("AIL"):
        if ail.get(3):
            res["participant"].append({"actor": {"display": ail.get(3)}, "status": "accepted"})
    if "start" in res and "end" not in res and "minutesDuration" not in res:
        res["minutesDuration"] = 15
    if "start" in res and "end" not in res:
        res["end"] = _plus_minutes(res["start"], res["minutesDuration"])
    out.add(res)
    return out


def _plus_minutes(instant: str, minutes: int) -> str:
    return (datetime.fromisoformat(instant) + timedelta(minutes=minutes)).isoformat()
