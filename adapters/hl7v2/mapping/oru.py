"""ORU^R01 → DiagnosticReport + Observation per OBR group (HL7 v2-to-FHIR IG ORU_R01;
OBX segment map: value by OBX-2, units OBX-6, reference range OBX-7, interpretation OBX-8,
status OBX-11, NTE → note).

May import: the standard library, `adapters.hl7v2.*`, `adapters.hl7v2.mapping.*`.
"""

from __future__ import annotations

from typing import Any

from adapters.hl7v2 import datatypes as dt
from adapters.hl7v2.er7 import Segment
from adapters.hl7v2.errors import DATA_TYPE_ERROR, SEGMENT_SEQUENCE_ERROR, ErrLocation, Hl7ContentError
from adapters.hl7v2.mapping.common import encounter, organization, patient, practitioner
from adapters.hl7v2.mapping.context import Mapped, MappingContext
from adapters.hl7v2.quantity import quantity, reference_range, structured_numeric

Json = dict[str, Any]

_OBS_STATUS = {
    "F": "final",
    "C": "corrected",
    "P": "preliminary",
    "R": "preliminary",
    "I": "registered",
    "S": "preliminary",
    "X": "cancelled",
    "D": "entered-in-error",
    "W": "entered-in-error",
    "A": "amended",
    "U": "final",
}
_REPORT_STATUS = {
    "F": "final",
    "C": "corrected",
    "P": "preliminary",
    "R": "partial",
    "I": "registered",
    "S": "partial",
    "X": "cancelled",
    "A": "partial",
    "O": "registered",
}
_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_INTERP_CODES = {
    "N",
    "H",
    "L",
    "HH",
    "LL",
    "A",
    "AA",
    "<",
    ">",
    "HU",
    "LU",
    "U",
    "D",
    "B",
    "W",
    "S",
    "R",
    "I",
    "NEG",
    "POS",
    "IND",
    "DET",
    "ND",
    "E",
    "EX",
    "HX",
    "LX",
}
_STRING_TYPES = {"ST", "TX", "FT", "ID", "IS", "CX", "XPN", "XAD", "XTN", "ED", "RP", "AD", "PN", "TN"}


def map_oru(ctx: MappingContext) -> Mapped:
    """ORU^R01 → Patient, Encounter, one DiagnosticReport per OBR with its Observations.
    Raises: Hl7ContentError 100 (no PID / OBX before OBR), 102 (bad OBX-5, timestamps)."""
    out = Mapped()
    pid = ctx.segment("PID")
    assert pid is not None
    pat_ref = f"Patient/{patient(ctx, pid, out)}"
    enc_id = encounter(ctx, ctx.message.first("PV1"), pat_ref, out)
    enc_ref = f"Encounter/{enc_id}" if enc_id else None
    report: Json | None = None
    last: Json | None = None
    index = 0
    for seg in ctx.message.segments:
        if seg.name == "OBR":
            report, last, index = _report(ctx, seg, pat_ref, enc_ref, out), None, 0
            out.add(report)
        elif seg.name == "OBX":
            if report is None:
                raise Hl7ContentError(SEGMENT_SEQUENCE_ERROR, "OBX before any OBR", seg.location())
            index += 1
            last = _observation(ctx, seg, report, index, out)
            report.setdefault("result", []).append({"reference": f"Observation/{last['id']}"})
            out.add(last)
        elif seg.name == "NTE" and report is not None:
            text = "\n".join(seg.values(3))
            if text and last is not None:
                last.setdefault("note", []).append({"text": text})
            elif text:
                report["conclusion"] = (report.get("conclusion", "") + "\n" + text).strip()
    if not ctx.message.first("OBR"):
        ctx.segment("OBR")
    return out


def _report(ctx: MappingContext, obr: Segment, pat_ref: str, enc_ref: str | None, out: Mapped) -> Json:
    filler, placer = obr.get(3), obr.get(2)
    key = filler or placer or f"{ctx.control_id}-{obr.get(1) or obr.sequence}"
    code = ctx.concept(obr, 4, "panel")
    if code is None:
        ctx.require(obr, 4, "universal service identifier")
    res: Json = {
        "resourceType": "DiagnosticReport",
        "id": dt.fhir_id(ctx.facility, "dr", key),
        "meta": ctx.meta(),
        "status": _REPORT_STATUS.get(obr.get(25), "final"),
        "code": code,
        "subject": {"reference": pat_ref},
        "category": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": obr.get(24) or "LAB"}
                ]
            }
        ],
        "performer": [{"reference": organization(ctx, out)}],
    }
    idents = []
    if placer:
        idents.append(_order_id("PLAC", ctx.facility, "placer", placer))
    if filler:
        idents.append(_order_id("FILL", ctx.facility, "filler", filler))
    if idents:
        res["identifier"] = idents
    if enc_ref:
        res["encounter"] = {"reference": enc_ref}
    effective = ctx.ts(obr, 7)
    if effective:
        res["effectiveDateTime"] = effective
    issued = ctx.instant(obr, 22)
    if issued:
        res["issued"] = issued
    for comps in ctx.all_components(obr, 32):
        ref = practitioner(ctx, comps, out)
        if ref:
            res["resultsInterpreter"] = [ref]
            break
    return res


def _order_id(code: str, facility: str, kind: str, value: str) -> Json:
    return {
        "type": {"coding": [{"system": dt.V2_0203, "code": code}]},
        "system": f"urn:qyhie:facility:{facility}:{kind}",
        "value": value,
    }


def _observation(ctx: MappingContext, obx: Segment, report: Json, index: int, out: Mapped) -> Json:
    code = ctx.concept(obx, 3, "observation")
    if code is None:
        ctx.require(obx, 3, "observation identifier")
    assert code is not None
    local = code.get("coding", [{}])[0].get("code", str(index))
    res: Json = {
        "resourceType": "Observation",
        "id": dt.fhir_id(report["id"], obx.get(1) or str(index), local),
        "meta": ctx.meta(),
        "status": _OBS_STATUS.get(obx.get(11), "final"),
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": code,
        "subject": report["subject"],
    }
    if "encounter" in report:
        res["encounter"] = report["encounter"]
    unit = obx.get(6, 1)
    _value(ctx, obx, unit, res)
    rng = _range(obx, unit)
    if rng:
        res["referenceRange"] = [rng]
    if unit and ctx.terminology is not None:
        _ucum_codes(ctx, res)
    interp = obx.values(8)
    if interp:
        res["interpretation"] = [
            {
                "coding": [{"system": _INTERPRETATION, "code": x}]
                if x in _INTERP_CODES
                else [{"system": dt.code_system("HL70078", ctx.facility), "code": x}]
            }
            for x in interp
        ]
    effective = ctx.ts(obx, 14) or report.get("effectiveDateTime")
    if effective:
        res["effectiveDateTime"] = effective
    for comps in ctx.all_components(obx, 16):
        ref = practitioner(ctx, comps, out)
        if ref:
            res["performer"] = [ref]
            break
    return res


def _value(ctx: MappingContext, obx: Segment, unit: str, res: Json) -> None:
    vtype = obx.get(2).upper()
    raw = obx.raw(5)
    if not raw or raw == '""':
        res["dataAbsentReason"] = {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "unknown"}
            ]
        }
        return
    try:
        if vtype == "NM":
            res["valueQuantity"] = quantity(obx.get(5), unit)
        elif vtype == "SN":
            key, value = structured_numeric(ctx.components(obx, 5), unit)
            res[key] = value
        elif vtype in ("CE", "CWE", "CNE", "CF"):
            res["valueCodeableConcept"] = ctx.concept(obx, 5, "result")
        elif vtype in ("DT", "TS", "DTM"):
            res["valueDateTime"] = ctx.ts(obx, 5)
        elif vtype == "TM":
            v = obx.get(5)
            res["valueTime"] = f"{v[0:2]}:{v[2:4] or '00'}:{v[4:6] or '00'}"
        else:
            reps = obx.values(5)
            if vtype not in _STRING_TYPES:
                res["note"] = [{"text": f"OBX-2 value type {vtype or '(empty)'} kept as text"}]
            res["valueString"] = "\n".join(r for r in reps if r)
    except ValueError as exc:
        raise Hl7ContentError(
            DATA_TYPE_ERROR, f"OBX-5 ({vtype}): {exc}", ErrLocation("OBX", obx.sequence, 5)
        ) from None


_QUANTITY_HOLDERS = frozenset(
    {"valueQuantity", "valueRange", "valueRatio", "referenceRange", "low", "high", "numerator", "denominator"}
)


def _ucum_codes(ctx: MappingContext, node: Any) -> None:
    """Give each Quantity whose unit the built-in table does not know, but the terminology
    service validates as UCUM, its UCUM system and code (the unit as sent stays in `unit`)."""
    if isinstance(node, dict):
        unit = node.get("unit")
        if "value" in node and isinstance(unit, str) and "code" not in node and ctx.valid_ucum(unit):
            node["system"], node["code"] = dt.UCUM, unit
        for key, value in node.items():
            if key in _QUANTITY_HOLDERS:
                _ucum_codes(ctx, value)
    elif isinstance(node, list):
        for item in node:
            _ucum_codes(ctx, item)


def _range(obx: Segment, unit: str) -> Json | None:
    try:
        return reference_range(obx.get(7), unit)
    except ValueError:
        return {"text": obx.get(7)}
