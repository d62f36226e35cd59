"""Synthetic telemedicine world shared by the unit and integration tests (invented names and numbers)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from ehr_store import Store
from telemedicine import ScheduleTemplate, SessionTemplate

Json = dict[str, Any]
CARDIO = {"system": "urn:qyhie:department", "code": "03.04", "display": "心血管内科"}


def template(
    role: str = "QYRMYY-card-1", *, capacity: int = 1, share: float = 0.0, **kw: Any
) -> ScheduleTemplate:
    """Mon and Wed mornings (16 × 15 min) of a cardiologist at 清远市人民医院."""
    sessions = tuple(SessionTemplate(d, "morning", 15, capacity, share) for d in (0, 2))
    return ScheduleTemplate(
        role,
        "org-QYRMYY",
        CARDIO,
        sessions,
        practitioner_display="李医生",
        organization_display="清远市人民医院",
        county="441802",
        township="441802-洲心街道",
        **kw,
    )


def next_monday(after: date | None = None) -> date:
    day = (after or date.today()) + timedelta(days=1)
    while day.weekday() != 0:
        day += timedelta(days=1)
    return day


def seed_residents(store: Store) -> None:
    """Resident A: golden G-A with a source at TTWSY (township), consent to share."""
    with store.unit_of_work(write=True) as uow:
        r = uow.resources
        r.create(
            {
                "resourceType": "Patient",
                "meta": {"source": "urn:qyhie:facility:TTWSY"},
                "identifier": [{"system": "urn:qyhie:facility:TTWSY:mrn", "value": "A001"}],
                "managingOrganization": {"reference": "Organization/org-TTWSY"},
                "name": [{"family": "测", "given": ["甲"]}],
                "gender": "female",
                "birthDate": "1970-03-01",
                "address": [{"district": "441821"}],
                "link": [{"other": {"reference": "Patient/G-A"}, "type": "refer"}],
            },
            id="TTWSY-A",
        )
        r.create(
            {
                "resourceType": "Patient",
                "meta": {"tag": [{"system": "urn:qyhie:empi", "code": "golden"}]},
                "identifier": [{"system": "urn:oid:2.16.156.10011.1.3", "value": "44182119700301002X"}],
                "name": [{"family": "测", "given": ["甲"]}],
                "gender": "female",
                "birthDate": "1970-03-01",
                "link": [{"other": {"reference": "Patient/TTWSY-A"}, "type": "seealso"}],
            },
            id="G-A",
        )
        r.create(
            {
                "resourceType": "Consent",
                "status": "active",
                "scope": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                            "code": "patient-privacy",
                        }
                    ]
                },
                "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                "patient": {"reference": "Patient/G-A"},
                "provision": {"type": "permit"},
            },
            id="consent-A",
        )
        r.create(
            {
                "resourceType": "DiagnosticReport",
                "status": "final",
                "meta": {"source": "urn:qyhie:facility:TTWSY"},
                "code": {"text": "心电图"},
                "subject": {"reference": "Patient/TTWSY-A"},
            },
            id="ecg-A",
        )
        uow.commit()
