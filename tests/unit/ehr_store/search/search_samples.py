"""Synthetic, real-looking FHIR resources for the search tests (invented people; the
身份证号 values have valid GB 11643 check characters)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

RESIDENT_ID_SYSTEM = "urn:oid:2.16.156.10011.1.3"
MRN_SYSTEM = "urn:oid:1.2.156.112604.1.2.1"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def patient(
    id: str,
    *,
    family: str,
    given: str,
    resident_id: str | None = None,
    mrn: str | None = None,
    gender: str = "female",
    birth_date: str = "1985-07-14",
    city: str = "清远市",
    phone: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    identifiers = []
    if resident_id:
        identifiers.append(
            {"system": RESIDENT_ID_SYSTEM, "value": resident_id, "type": {"text": "居民身份证"}}
        )
    if mrn:
        identifiers.append({"system": MRN_SYSTEM, "value": mrn, "type": {"text": "MRN"}})
    res: dict[str, Any] = {
        "resourceType": "Patient",
        "id": id,
        "identifier": identifiers,
        "name": [{"family": family, "given": [given]}],
        "gender": gender,
        "birthDate": birth_date,
        "address": [{"city": city, "line": ["连江路18号"], "postalCode": "511500"}],
    }
    if phone:
        res["telecom"] = [{"system": "phone", "value": phone}]
    res.update(extra)
    return res


def observation(
    id: str,
    *,
    subject: str,
    code: str,
    value: str | None = None,
    unit: str = "g/dL",
    effective: str = "2026-03-01T10:00:00+08:00",
    display: str = "Hemoglobin",
    encounter: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "id": id,
        "status": "final",
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
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": "血红蛋白"},
        "subject": {"reference": subject},
        "effectiveDateTime": effective,
    }
    if value is not None:
        res["valueQuantity"] = {"value": Decimal(value), "unit": unit, "system": UCUM, "code": unit}
    if encounter:
        res["encounter"] = {"reference": encounter}
    res.update(extra)
    return res


def encounter(id: str, *, subject: str, start: str, end: str | None = None, **extra: Any) -> dict[str, Any]:
    period = {"start": start} | ({"end": end} if end else {})
    res: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": id,
        "status": "finished" if end else "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": subject},
        "period": period,
    }
    res.update(extra)
    return res
