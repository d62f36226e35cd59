"""Notifiable cases gathered from stored resources as 传染病报告卡-shaped `CaseRecord`s.

How cases are recognised: recomputed on demand from what the store holds (no hook in the
ingestion path, so every adapter, replay and REST write counts alike):
- Conditions whose diagnosis time (`recordedDate`, else `onsetDateTime`) falls in the period —
  found with the `recorded-date` search index — and whose ICD-10 code (WHO or Chinese edition)
  is in the notifiable catalogue;
- laboratory Observations of a listed pathogen test (`code` index on the LOINC list) with a
  positive result (interpretation POS/DET, or a value 阳性/positive/detected) in the period.
One case per (Patient, disease): a positive test makes the case 确诊; otherwise a Condition is
临床诊断, or 疑似 when its verificationStatus is provisional/differential/unconfirmed.
Reporting: a case is reported when a Task (code `nndrs-report`, `focus` = the Condition or
Observation, status completed) records it; its deadline is diagnosis + 2 h (甲类 and 乙类
managed as 甲类) or + 24 h; overdue = not reported by the deadline (or reported after it).

May import: the standard library, orjson, `ehr_store`, `terminology`, `hie_server.bulk`
(age, county helpers), `hie_server.surveillance.*`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import orjson

from ehr_store import StoredResource, UnitOfWork
from hie_server.bulk.cohorts import age_on, patient_county
from hie_server.surveillance.diseases import Disease, DiseaseCatalogue
from terminology import canonical

Json = dict[str, Any]
CHINA = timezone(timedelta(hours=8))
TASK_SYSTEM = f"{canonical.BASE}/CodeSystem/surveillance-task"
REPORT_TASK = "nndrs-report"
POSITIVE = frozenset({"POS", "DET", "positive", "detected", "阳性", "+", "10828004", "260373001"})
SUSPECTED = frozenset({"provisional", "differential", "unconfirmed"})
PAGE = 500
ICD10_SYSTEMS = (canonical.ICD10, canonical.ICD10_CN)


@dataclass
class CaseRecord:
    """One case, shaped like the 传染病报告卡 (fields named after the card)."""

    case_id: str
    disease_code: str
    disease_name: str
    disease_class: str
    classification: str
    diagnosis_time: datetime
    onset_date: date | None
    reported_at: datetime | None
    deadline: datetime
    facility: str | None
    facility_name: str | None
    patient_id: str
    name: str | None = None
    resident_id: str | None = None
    phone: str | None = None
    sex: str | None = None
    birth_date: str | None = None
    age: int | None = None
    county: str | None = None
    township: str | None = None
    village: str | None = None
    occupation: str | None = None
    icd10: str | None = None
    sources: list[str] = field(default_factory=list)

    def overdue(self, now: datetime) -> bool:
        """Not reported by the deadline (or reported after it)."""
        if self.reported_at is not None:
            return self.reported_at > self.deadline
        return now > self.deadline


def parse_time(value: str | None) -> datetime | None:
    """A FHIR date/dateTime as an aware datetime (dates: 00:00 China time); None when absent."""
    if not value:
        return None
    try:
        if len(value) <= 10:
            day = date.fromisoformat(value + "-01" * ((10 - len(value)) // 3))
            return datetime.combine(day, time(), CHINA)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=CHINA)


def _pages(uow: UnitOfWork, rtype: str, params: list[tuple[str, str]]) -> Iterator[StoredResource]:
    offset = 0
    while True:
        result = uow.resources.search(rtype, [*params, ("_count", str(PAGE)), ("_offset", str(offset))])
        yield from result.matches
        if not result.has_more:
            return
        offset += PAGE


def _icd10(doc: Json) -> str | None:
    systems = (canonical.ICD10, canonical.ICD10_CN)
    return next(
        (
            str(c["code"])
            for c in doc.get("code", {}).get("coding", [])
            if c.get("system") in systems and c.get("code")
        ),
        None,
    )


def _positive(doc: Json) -> bool:
    codes = {str(c.get("code")) for i in doc.get("interpretation", []) for c in i.get("coding", [])}
    value = doc.get("valueCodeableConcept") or {}
    codes |= {str(c.get("code")) for c in value.get("coding", [])} | {str(value.get("text", ""))}
    codes.add(str(doc.get("valueString", "")).strip().lower())
    return bool(codes & POSITIVE)


def _range(start: date, end: date) -> list[tuple[str, str]]:
    return [("ge", start.isoformat()), ("le", end.isoformat())]


def _conditions(
    uow: UnitOfWork, params: list[tuple[str, str]], ids: Sequence[str] | None
) -> Iterator[StoredResource]:
    """The Conditions matching `params` in the search's order (type, id), or when `ids` are
    given those Conditions (current, not deleted) in that order."""
    if ids is None:
        yield from _pages(uow, "Condition", params)
        return
    for start in range(0, len(ids), PAGE):
        chunk = ids[start : start + PAGE]
        found = uow.resources.read_many(("Condition", i) for i in chunk)
        yield from (s for i in chunk if (s := found.get(("Condition", i))) is not None)


def find_candidates(
    uow: UnitOfWork,
    catalogue: DiseaseCatalogue,
    start: date,
    end: date,
    condition_ids: Sequence[str] | None = None,
) -> list[tuple[Disease, Json, str]]:
    """(disease, resource, classification) of notifiable Conditions and positive pathogen tests.
    `condition_ids`: when given, only these Conditions are read, in this order (those of the
    period whose first ICD-10 code is notifiable, in the search's order, from the read model:
    `facts.notifiable_condition_ids`); else every Condition of the period is searched."""
    found: list[tuple[Disease, Json, str]] = []
    conditions = [("recorded-date", f"{p}{v}") for p, v in _range(start, end)]
    for stored in _conditions(uow, conditions, condition_ids):
        doc = orjson.loads(stored.content)
        code = _icd10(doc)
        disease = catalogue.for_icd10(code) if code else None
        if disease is None:
            continue
        status = {c.get("code") for c in doc.get("verificationStatus", {}).get("coding", [])}
        found.append((disease, doc, "疑似" if status & SUSPECTED else "临床诊断"))
    # one search per test code: an OR of `system|code` pairs is planned as a scan of every
    # Observation code in the token index (75 ms at 550k Observations), one pair as a lookup
    tests = sorted(catalogue.settings.pathogen_loinc)
    span = [("date", f"{p}{v}") for p, v in _range(start, end)]
    observations = {
        stored.id: stored
        for test in tests
        for stored in _pages(uow, "Observation", [("code", f"{canonical.LOINC}|{test}"), *span])
    }
    for stored in (observations[i] for i in sorted(observations)):
        doc = orjson.loads(stored.content)
        codes = [
            c.get("code") for c in doc.get("code", {}).get("coding", []) if c.get("system") == canonical.LOINC
        ]
        disease = next((d for c in codes if (d := catalogue.for_loinc(str(c)))), None)
        if disease is not None and _positive(doc) and doc.get("status") in ("final", "amended", "corrected"):
            found.append((disease, doc, "确诊"))
    return found


def _occupation(patient: Json) -> str | None:
    for ext in patient.get("extension", []):
        if str(ext.get("url", "")).lower().endswith("occupation"):
            concept = ext.get("valueCodeableConcept") or {}
            coding = (concept.get("coding") or [{}])[0]
            text = concept.get("text") or coding.get("display") or ext.get("valueString")
            return str(text) if text else None
    return None


def _person(record: CaseRecord, patient: Json | None, on: date) -> CaseRecord:
    if patient is None:
        return record
    name = (patient.get("name") or [{}])[0]
    ids = [i for i in patient.get("identifier", []) if i.get("system") == "urn:oid:2.16.156.10011.1.3"]
    phones = [t.get("value") for t in patient.get("telecom", []) if t.get("system") == "phone"]
    addresses = patient.get("address") or [{}]
    home = next((a for a in addresses if a.get("use") == "home"), addresses[0])
    lines = home.get("line") or []
    return replace(
        record,
        name=name.get("text") or f"{name.get('family', '')}{''.join(name.get('given', []))}" or None,
        resident_id=ids[0].get("value") if ids else None,
        phone=phones[0] if phones else None,
        sex=patient.get("gender"),
        birth_date=patient.get("birthDate"),
        age=age_on(patient.get("birthDate"), on),
        county=patient_county(patient),
        township=lines[1] if len(lines) > 1 else None,
        village=lines[0] if lines else None,
        occupation=_occupation(patient),
    )


def _reports(
    uow: UnitOfWork, refs: Sequence[str], task_ids: Sequence[str] | None = None
) -> dict[str, datetime]:
    """When each of `refs` was first reported: completed report Tasks focused on it, searched,
    or read by id when `task_ids` (from the read model, `facts.report_task_ids`) are given."""
    if task_ids is None:
        tasks: Iterable[StoredResource] = (
            stored
            for start in range(0, len(refs), 100)
            for stored in _pages(
                uow,
                "Task",
                [
                    ("focus", ",".join(refs[start : start + 100])),
                    ("code", f"{TASK_SYSTEM}|{REPORT_TASK}"),
                    ("status", "completed"),
                ],
            )
        )
    else:
        tasks = uow.resources.read_many(("Task", i) for i in task_ids).values()
    reported: dict[str, datetime] = {}
    for stored in tasks:
        task = orjson.loads(stored.content)
        at = parse_time((task.get("executionPeriod") or {}).get("end") or task.get("authoredOn"))
        ref = str(task.get("focus", {}).get("reference", ""))
        if at is not None and (ref not in reported or at < reported[ref]):
            reported[ref] = at
    return reported


def collect_cases(
    uow: UnitOfWork,
    catalogue: DiseaseCatalogue,
    start: date,
    end: date,
    *,
    county: str | None = None,
    disease: str | None = None,
    condition_ids: Sequence[str] | None = None,
    report_ids: Callable[[Sequence[str]], Sequence[str]] | None = None,
) -> list[CaseRecord]:
    """Cases diagnosed from `start` to `end` (inclusive, China time), optionally of residents of
    `county` (GB/T 2260 prefix) and of one `disease` (platform code like B13, or its name).
    `condition_ids`: see `find_candidates`; `report_ids(sources)`: the ids of the completed
    report Tasks focused on them (read model), else searched. Sorted by diagnosis time. Raises: the store's
    domain errors."""
    merged: dict[tuple[str, str], CaseRecord] = {}
    for found, doc, classification in find_candidates(uow, catalogue, start, end, condition_ids):
        if disease and disease not in (found.code, found.name):
            continue
        when = parse_time(
            doc.get("recordedDate")
            or doc.get("effectiveDateTime")
            or doc.get("issued")
            or doc.get("onsetDateTime")
        )
        subject = str(doc.get("subject", {}).get("reference", ""))
        if when is None or not subject.startswith("Patient/"):
            continue
        ref = f"{doc['resourceType']}/{doc['id']}"
        key = (subject, found.code)
        if key in merged:
            case = merged[key]
            case.sources.append(ref)
            if classification == "确诊":
                case.classification = "确诊"
            continue
        facility = str(doc.get("meta", {}).get("source", "")).removeprefix("urn:qyhie:facility:") or None
        merged[key] = CaseRecord(
            case_id=ref,
            disease_code=found.code,
            disease_name=found.name,
            disease_class=found.class_label,
            classification=classification,
            diagnosis_time=when,
            onset_date=(o.date() if (o := parse_time(doc.get("onsetDateTime"))) else None),
            reported_at=None,
            deadline=when + timedelta(hours=found.deadline_hours(catalogue.settings)),
            facility=facility,
            facility_name=None,
            patient_id=subject.removeprefix("Patient/"),
            icd10=_icd10(doc),
            sources=[ref],
        )
    cases = list(merged.values())
    patients = uow.resources.read_many(("Patient", c.patient_id) for c in cases)
    orgs = uow.resources.read_many(("Organization", f"org-{c.facility}") for c in cases if c.facility)
    sources = sorted({s for c in cases for s in c.sources})
    reports = _reports(uow, sources, report_ids(sources) if report_ids else None)
    out = []
    for case in cases:
        stored = patients.get(("Patient", case.patient_id))
        case = _person(case, orjson.loads(stored.content) if stored else None, case.diagnosis_time.date())
        org = orgs.get(("Organization", f"org-{case.facility}"))
        case.facility_name = orjson.loads(org.content).get("name") if org else None
        times = [reports[s] for s in case.sources if s in reports]
        case.reported_at = min(times) if times else None
        if county and not (case.county or "").startswith(county):
            continue
        out.append(case)
    return sorted(out, key=lambda c: (c.diagnosis_time, c.case_id))


def report_task(focus: str, patient_id: str, reported_at: datetime, by: str | None = None) -> Json:
    """The Task recording that a case (`focus`: `Condition/x` or `Observation/y`) was reported
    to the national system (传染病报告信息管理系统) at `reported_at`."""
    task: Json = {
        "resourceType": "Task",
        "status": "completed",
        "intent": "order",
        "code": {"coding": [{"system": TASK_SYSTEM, "code": REPORT_TASK, "display": "传染病网络直报"}]},
        "focus": {"reference": focus},
        "for": {"reference": f"Patient/{patient_id}"},
        "authoredOn": reported_at.isoformat(),
        "executionPeriod": {"end": reported_at.isoformat()},
    }
    if by:
        task["owner"] = {"display": by}
    return task
