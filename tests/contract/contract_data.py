"""Synthetic resources for the contract suite (invented names, valid 身份证号 check digits)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

RESIDENT_ID_SYSTEM = "urn:oid:2.16.156.10011.1.3"


def patient(family: str = "张", given: str = "三", *, mrn: str = "MRN001", gender: str = "male",
            birth: str = "1980-01-02", resident_id: str = "11010519491231002X") -> dict[str, Any]:
    """A Patient with an MRN and a 身份证号."""
    return {
        "resourceType": "Patient",
        "identifier": [
            {"system": "urn:oid:2.16.156.10011.0.1.100", "value": mrn},
            {"system": RESIDENT_ID_SYSTEM, "value": resident_id},
        ],
        "name": [{"family": family, "given": [given], "text": f"{family}{given}"}],
        "gender": gender,
        "birthDate": birth,
        "telecom": [{"system": "phone", "value": "138-0000-0001"}],
    }


def observation(subject: str, *, code: str = "2345-7", value: str = "5.50",
                effective: str = "2024-03-01T08:00:00+08:00") -> dict[str, Any]:
    """A glucose Observation whose value keeps its written precision (parsed with Decimal)."""
    doc: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": "Glucose"}]},
        "subject": {"reference": subject},
        "effectiveDateTime": effective,
        "valueQuantity": {"value": Decimal(value), "unit": "mmol/L", "system": "http://unitsofmeasure.org",
                          "code": "mmol/L"},
    }
    return doc
