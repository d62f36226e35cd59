"""Cohort Groups (FHIR R4B Group, `actual = true`) usable as Bulk Data export scopes.

`build_cohort(store, CohortSpec(...))` selects the Patients living in a county (GB/T 2260
prefix of `Patient.address.district`), having a Condition with an ICD-10 code under a prefix,
and/or aged within a band on a date; all given criteria must hold. The Group is stored under
a deterministic id (`cohort-county-441802-icd10-A15-age-0-14`), so building it again replaces
its members (a new version). Patients and Conditions are read with `ehr_store.stream_snapshot`
(flat memory), members are kept as ids.

May import: the standard library, orjson, `ehr_store`, `terminology` (canonical URLs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson

from ehr_store import InvalidInput, Store, StoredResource, stream_snapshot
from terminology import canonical

Json = dict[str, Any]
CHARACTERISTIC = f"{canonical.BASE}/CodeSystem/cohort-characteristic"


@dataclass(frozen=True)
class CohortSpec:
    """Criteria of a cohort; at least one of county, icd10 or an age bound."""

    county: str | None = None
    icd10: str | None = None
    age_low: int | None = None
    age_high: int | None = None
    on: date | None = None

    @property
    def group_id(self) -> str:
        """Deterministic Group id naming the criteria."""
        parts = ["cohort"]
        if self.county:
            parts += ["county", self.county]
        if self.icd10:
            parts += ["icd10", self.icd10.replace(".", "")]
        if self.age_low is not None or self.age_high is not None:
            parts += [
                "age",
                str(self.age_low or 0),
                str(self.age_high if self.age_high is not None else "up"),
            ]
        return "-".join(parts)[:64]

    def check(self) -> None:
        """Raises: InvalidInput (no criterion, bad county code, bad age band)."""
        if not (self.county or self.icd10 or self.age_low is not None or self.age_high is not None):
            raise InvalidInput("a cohort needs a county, an ICD-10 code or an age band")
        if self.county and not (self.county.isdigit() and 2 <= len(self.county) <= 6):
            raise InvalidInput(f"county {self.county!r} is not a GB/T 2260 code (e.g. 441802)")
        if (self.age_low or 0) < 0 or (self.age_high is not None and self.age_high < (self.age_low or 0)):
            raise InvalidInput("the age band needs 0 <= low <= high")


def age_on(birth: str | None, on: date) -> int | None:
    """Completed years on `on` from a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD); None when unknown."""
    if not birth or len(birth) < 4 or not birth[:4].isdigit():
        return None
    year, month, day = int(birth[:4]), int(birth[5:7] or 1) if len(birth) >= 7 else 1, 1
    if len(birth) >= 10:
        day = int(birth[8:10])
    return on.year - year - ((on.month, on.day) < (month, day))


def patient_county(patient: Json) -> str | None:
    """`address.district` of the home (or first) address: the GB/T 2260 county code."""
    addresses = patient.get("address") or []
    home = next((a for a in addresses if a.get("use") == "home"), addresses[0] if addresses else {})
    district = home.get("district")
    return str(district) if district else None


def _icd10_subjects(store: Store, prefix: str, until: datetime) -> set[str]:
    found: set[str] = set()
    for row in stream_snapshot(store, ["Condition"], until=until):
        doc = orjson.loads(row.content)
        codes = [
            c.get("code", "")
            for c in doc.get("code", {}).get("coding", [])
            if c.get("system") in (canonical.ICD10, canonical.ICD10_CN)
        ]
        if any(str(c).startswith(prefix) for c in codes):
            ref = str(doc.get("subject", {}).get("reference", ""))
            if ref.startswith("Patient/"):
                found.add(ref.removeprefix("Patient/"))
    return found


def _characteristics(spec: CohortSpec) -> list[Json]:
    out: list[Json] = []
    if spec.county:
        out.append(
            {
                "code": {"coding": [{"system": CHARACTERISTIC, "code": "county"}], "text": "居住县区"},
                "valueCodeableConcept": {"coding": [{"system": canonical.DIVISION, "code": spec.county}]},
                "exclude": False,
            }
        )
    if spec.icd10:
        out.append(
            {
                "code": {"coding": [{"system": CHARACTERISTIC, "code": "condition"}], "text": "诊断"},
                "valueCodeableConcept": {"coding": [{"system": canonical.ICD10, "code": spec.icd10}]},
                "exclude": False,
            }
        )
    if spec.age_low is not None or spec.age_high is not None:
        band: Json = {}
        if spec.age_low is not None:
            band["low"] = {"value": spec.age_low, "unit": "a", "system": canonical.UCUM, "code": "a"}
        if spec.age_high is not None:
            band["high"] = {"value": spec.age_high, "unit": "a", "system": canonical.UCUM, "code": "a"}
        out.append(
            {
                "code": {"coding": [{"system": CHARACTERISTIC, "code": "age"}], "text": "年龄段"},
                "valueRange": band,
                "exclude": False,
            }
        )
    return out


def build_cohort(store: Store, spec: CohortSpec, *, now: datetime | None = None) -> StoredResource:
    """Select the members and store the Group (see module docstring). Returns the stored version.

    Raises: InvalidInput (bad criteria), the store's domain errors.
    """
    spec.check()
    until = now or datetime.now(UTC)
    on = spec.on or until.date()
    with_condition = _icd10_subjects(store, spec.icd10, until) if spec.icd10 else None
    members: list[str] = []
    for row in stream_snapshot(store, ["Patient"], until=until):
        doc = orjson.loads(row.content)
        if spec.county and not (patient_county(doc) or "").startswith(spec.county):
            continue
        if with_condition is not None and row.id not in with_condition:
            continue
        if spec.age_low is not None or spec.age_high is not None:
            age = age_on(doc.get("birthDate"), on)
            if (
                age is None
                or age < (spec.age_low or 0)
                or (spec.age_high is not None and age > spec.age_high)
            ):
                continue
        members.append(row.id)
    group: Json = {
        "resourceType": "Group",
        "id": spec.group_id,
        "type": "person",
        "actual": True,
        "name": f"Cohort {spec.group_id.removeprefix('cohort-')}",
        "quantity": len(members),
        "characteristic": _characteristics(spec),
        "member": [{"entity": {"reference": f"Patient/{pid}"}} for pid in members],
    }
    with store.unit_of_work(write=True) as uow:
        stored, _ = uow.resources.update("Group", spec.group_id, group)
        uow.commit()
    return stored


def group_county(group: Json) -> str | None:
    """The county characteristic of a cohort Group (None when it has none)."""
    for item in group.get("characteristic", []):
        codes = item.get("code", {}).get("coding", [])
        if any(c.get("system") == CHARACTERISTIC and c.get("code") == "county" for c in codes):
            coding = item.get("valueCodeableConcept", {}).get("coding", [{}])
            return str(coding[0].get("code")) if coding and coding[0].get("code") else None
    return None
