"""A small synthetic world for the access-rule tests (unit tests with a local issuer and the
integration tests against Keycloak): residents registered at facilities, golden records,
referrals, consents and observations. Names and numbers are invented.

Residents (golden `G-x`, sources `<FACILITY>-x`):
- A: registered at TTWSY and QYRMYY (county 441821); referred TTWSY -> QYRMYY (active) and
  consented (permit): a QYRMYY specialist may see A.
- B: registered at QYRMYY only (county 441802): hidden from TTWSY doctors.
- D: registered at TTWSY and QYRMYY, opted out of cross-facility sharing (Consent deny).
"""

from __future__ import annotations

from typing import Any

from ehr_store import Store
from ehr_store.empi import EMPI_TAG_SYSTEM

Json = dict[str, Any]
ORG = "Organization/org-"


def _src(fac: str) -> Json:
    return {"source": f"urn:qyhie:facility:{fac}"}


def source_patient(fac: str, key: str, district: str, family: str) -> Json:
    return {
        "resourceType": "Patient",
        "id": f"{fac}-{key}",
        "meta": _src(fac),
        "identifier": [{"system": f"urn:qyhie:facility:{fac}:mrn", "value": f"{key}001"}],
        "managingOrganization": {"reference": f"{ORG}{fac}"},
        "name": [{"family": family, "given": ["测"]}],
        "gender": "female",
        "birthDate": "1980-01-01",
        "address": [{"district": district, "city": "清远市"}],
        "link": [{"other": {"reference": f"Patient/G-{key}"}, "type": "refer"}],
    }


def golden(key: str, sources: list[str], family: str) -> Json:
    return {
        "resourceType": "Patient",
        "id": f"G-{key}",
        "meta": {"tag": [{"system": EMPI_TAG_SYSTEM, "code": "golden"}]},
        "name": [{"family": family, "given": ["测"]}],
        "gender": "female",
        "birthDate": "1980-01-01",
        "link": [{"other": {"reference": f"Patient/{s}"}, "type": "seealso"} for s in sources],
    }


def observation(oid: str, fac: str, patient: str) -> Json:
    return {
        "resourceType": "Observation",
        "id": oid,
        "meta": _src(fac),
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "valueQuantity": {"value": 72, "unit": "/min"},
    }


def resources() -> list[Json]:
    out: list[Json] = []
    for fac in ("TTWSY", "QYRMYY"):
        out.append({"resourceType": "Organization", "id": f"org-{fac}", "meta": _src(fac), "name": fac})
    out += [
        source_patient("TTWSY", "A", "441821", "甲"),
        source_patient("QYRMYY", "A", "441821", "甲"),
        golden("A", ["TTWSY-A", "QYRMYY-A"], "甲"),
        source_patient("QYRMYY", "B", "441802", "乙"),
        golden("B", ["QYRMYY-B"], "乙"),
        source_patient("TTWSY", "D", "441821", "丁"),
        source_patient("QYRMYY", "D", "441821", "丁"),
        golden("D", ["TTWSY-D", "QYRMYY-D"], "丁"),
        observation("obs-A-TT", "TTWSY", "TTWSY-A"),
        observation("obs-A-QY", "QYRMYY", "QYRMYY-A"),
        observation("obs-B-QY", "QYRMYY", "QYRMYY-B"),
        observation("obs-D-TT", "TTWSY", "TTWSY-D"),
        observation("obs-D-QY", "QYRMYY", "QYRMYY-D"),
        {
            "resourceType": "ServiceRequest",
            "id": "ref-A",
            "meta": _src("TTWSY"),
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/TTWSY-A"},
            "requester": {"reference": f"{ORG}TTWSY"},
            "performer": [{"reference": f"{ORG}QYRMYY"}],
        },
        consent("consent-A", "TTWSY-A", "permit"),
        consent("consent-D", "TTWSY-D", "deny"),
    ]
    return out


def consent(cid: str, patient: str, kind: str) -> Json:
    return {
        "resourceType": "Consent",
        "id": cid,
        "status": "active",
        "scope": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient}"},
        "policyRule": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "OPTIN" if kind == "permit" else "OPTOUT",
                }
            ]
        },
        "provision": {
            "type": kind,
            "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
        },
    }


def seed(store: Store) -> None:
    """Write the world into `store` (update-as-create with fixed ids)."""
    with store.unit_of_work(write=True) as uow:
        for resource in resources():
            uow.resources.update(resource["resourceType"], resource["id"], resource)
        uow.commit()
