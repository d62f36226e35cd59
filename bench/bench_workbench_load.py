"""Fast synthetic load for `bench_workbench.py`: a Qingyuan-shaped population written through the
store's bulk path (`ehr_store.bulk.bulk_insert` for current and history rows, the search index's
own `extract_index` + `write_indexes`), EMPI resident records in bulk, large units of work.

What is skipped compared with `uow.resources.create`: the per-resource pydantic validation (the
shapes generated here are validated once each by `validate_resource` before loading: `check_shapes`)
and the EMPI match (every generated resident is a new person: one source Patient, one golden
Patient composed by `compose_golden`, one `refer` link, the EMPI record and blocking keys as
`EmpiService.on_source_patient` writes them). The EMPI review queue gets real entries afterwards:
`review_pairs` sends near-duplicates through `EmpiService.on_source_patient`.

Data, per resident n (ids derived from n; 12 facilities H0..H11 as `meta.source`, 8 Qingyuan
counties as the home `address.district`): 1 source + 1 golden Patient, 3 Encounters over the last
365 days (China time; 1 in 10 inpatient), 1 chronic Condition, an influenza-like illness in
winter for 1 in 8 (J11.1 流行性感冒, notifiable, or J06.9), another notifiable disease for 1 in 30
(感染性腹泻, 肺结核, 水痘, 手足口病, 细菌性痢疾) with its 网络直报 Task for 3 in 4 (1 in 5 of those
late), 12 lab Observations (4 LOINC tests × 3, each with a trend), 1 AllergyIntolerance for 1 in 3,
2 Immunizations: ~21 resources. 1 resident in 5,000 is a chronic patient with 60 more Encounters
and 300 more Observations. Plus AuditEvents (`audit_events`) as the audit writer shapes them.

May import: anything (a benchmark script).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
from bench_search import FAMILIES, GIVEN, resident_id

from ehr_store import SqlStore, validate_resource
from ehr_store.bulk import bulk_insert
from ehr_store.empi.blocking import blocking_keys
from ehr_store.empi.config import MatchRules
from ehr_store.empi.features import extract
from ehr_store.empi.golden import compose_golden, with_link
from ehr_store.empi.tables import block_table, link_table, record_table
from ehr_store.search import extract_index, get_registry, write_indexes
from ehr_store.tables import resource_history_table, resource_table
from ehr_store.versioning import stamp
from hie_server.surveillance import REPORT_TASK, TASK_SYSTEM
from terminology import canonical

Json = dict[str, Any]
CHINA = timezone(timedelta(hours=8))
RID = "urn:oid:2.16.156.10011.1.3"
COUNTIES = ["441802", "441803", "441821", "441823", "441825", "441826", "441881", "441882"]
FACILITIES = [
    ("H0", "清远市人民医院"), ("H1", "清远市中医院"), ("H2", "清城区人民医院"), ("H3", "清新区人民医院"),
    ("H4", "佛冈县人民医院"), ("H5", "阳山县人民医院"), ("H6", "连山县人民医院"), ("H7", "连南县人民医院"),
    ("H8", "英德市人民医院"), ("H9", "连州市人民医院"), ("H10", "石角镇卫生院"), ("H11", "飞来峡镇卫生院"),
]
LABS = [("718-7", "g/dL", 13.5, -0.4), ("2345-7", "mmol/L", 6.2, 0.5), ("2160-0", "umol/L", 80.0, 6.0),
        ("6690-2", "10*9/L", 6.5, 0.3)]
CHRONIC = [("I10", "原发性高血压"), ("E11.9", "2型糖尿病"), ("J20.9", "急性支气管炎"), ("K29.7", "胃炎")]
NOTIFIABLE = [("A09", "感染性腹泻"), ("A15.0", "肺结核"), ("B01.9", "水痘"), ("B08.4", "手足口病"),
              ("A03.9", "细菌性痢疾")]
ICD10 = canonical.ICD10
LAB_CAT = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                       "code": "laboratory"}]}
PER_RESIDENT = 21
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"


def phone(n: int) -> str:
    return f"138{n:08d}"


def facility(n: int) -> str:
    return FACILITIES[n % len(FACILITIES)][0]


def _encounter(n: int, k: int, when: datetime, fac: str) -> Json:
    inpatient = (n + k) % 10 == 0
    return {
        "resourceType": "Encounter", "id": f"e{n}-{k}", "status": "finished",
        "meta": {"source": f"urn:qyhie:facility:{fac}"},
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                  "code": "IMP" if inpatient else "AMB"},
        "subject": {"reference": f"Patient/p{n}"},
        "serviceProvider": {"reference": f"Organization/org-{fac}"},
        "period": {"start": when.isoformat(),
                   "end": (when + timedelta(days=4 if inpatient else 0, minutes=20)).isoformat()},
    }


def _condition(n: int, cid: str, enc: str, code: str, name: str, when: datetime, fac: str) -> Json:
    return {
        "resourceType": "Condition", "id": cid,
        "meta": {"source": f"urn:qyhie:facility:{fac}"},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": "active"}]},
        "code": {"coding": [{"system": ICD10, "code": code, "display": name}]},
        "subject": {"reference": f"Patient/p{n}"}, "encounter": {"reference": f"Encounter/{enc}"},
        "recordedDate": when.isoformat(),
    }


def _ili_days_back(n: int, now: datetime) -> int:
    """Days back (0-364) of an influenza-like illness: 1 in 5 any time of the year, 3 in 10 in the
    last six weeks, the others around the latest 20 January (a winter peak, ±45 days)."""
    if n % 5 == 0:
        return (n * 7919) % 365
    if n % 10 in (1, 6, 8):
        return (n * 13) % 42
    peak = now.replace(month=1, day=20)
    if peak > now:
        peak = peak.replace(year=now.year - 1)
    return min(364, max(0, (now - peak).days + (n * 31) % 91 - 45))


def resident(n: int, now: datetime, *, chronic: bool = False) -> Iterator[Json]:
    """The source Patient and the clinical resources of resident n (golden Patient: `golden`)."""
    fac = facility(n)
    src = {"source": f"urn:qyhie:facility:{fac}"}
    county = COUNTIES[n % len(COUNTIES)]
    yield {
        "resourceType": "Patient", "id": f"p{n}", "meta": src,
        "identifier": [{"system": RID, "value": resident_id(n)},
                       {"system": f"urn:qyhie:mrn:{fac}", "value": f"MRN{n:08d}"}],
        "name": [{"family": FAMILIES[n % len(FAMILIES)], "given": [GIVEN[n // 20 % len(GIVEN)]]}],
        "gender": "male" if n % 2 else "female",
        "birthDate": f"{1940 + n % 70}-{1 + n % 12:02d}-{1 + n % 28:02d}",
        "telecom": [{"system": "phone", "value": phone(n)}],
        "address": [{"use": "home", "city": "清远市", "district": county, "line": [f"{n % 40 + 1}村"]}],
    }
    visits = 3 + (60 if chronic else 0)
    days = [(n * 37 + k * 113) % 365 for k in range(visits)]
    for k, back in enumerate(days):
        yield _encounter(n, k, (now - timedelta(days=back)).replace(hour=8 + (n + k) % 9), fac)
    first = (now - timedelta(days=days[0])).replace(hour=9)
    code, name = CHRONIC[n % len(CHRONIC)]
    yield _condition(n, f"c{n}", f"e{n}-0", code, name, first, fac)
    if n % 8 == 3:  # influenza-like illness on a visit of its own
        when = (now - timedelta(days=_ili_days_back(n, now))).replace(hour=10)
        yield _encounter(n, visits, when, fac)
        code, name = ("J11.1", "流行性感冒") if n % 3 == 0 else ("J06.9", "急性上呼吸道感染")
        yield _condition(n, f"c{n}-ili", f"e{n}-{visits}", code, name, when, fac)
        if code == "J11.1":
            yield from _report(n, f"c{n}-ili", when, fac)
    if n % 30 == 7:  # another notifiable disease, diagnosed at the second visit
        when = (now - timedelta(days=days[1])).replace(hour=11)
        code, name = NOTIFIABLE[n // 30 % len(NOTIFIABLE)]
        yield _condition(n, f"c{n}-n", f"e{n}-1", code, name, when, fac)
        yield from _report(n, f"c{n}-n", when, fac)
    for k in range(12 + (300 if chronic else 0)):
        loinc, unit, base, slope = LABS[k % len(LABS)]
        when = now - timedelta(days=(n + 400 - k * 30) % 365 if not chronic else (k * 7) % 365)
        value = base + slope * (k // len(LABS)) + ((n * 7 + k) % 11 - 5) * base / 100
        yield {
            "resourceType": "Observation", "id": f"o{n}-{k}", "status": "final", "meta": src,
            "category": [LAB_CAT], "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
            "subject": {"reference": f"Patient/p{n}"}, "effectiveDateTime": when.isoformat(),
            "valueQuantity": {"value": round(value, 1), "unit": unit},
        }
    if n % 3 == 0:
        yield {"resourceType": "AllergyIntolerance", "id": f"a{n}", "meta": src,
               "patient": {"reference": f"Patient/p{n}"}, "code": {"text": "青霉素"},
               "recordedDate": (now - timedelta(days=n % 900)).date().isoformat()}
    for k in range(2):
        yield {"resourceType": "Immunization", "id": f"i{n}-{k}", "status": "completed", "meta": src,
               "vaccineCode": {"coding": [{"system": canonical.CVX, "code": ("140", "08")[k]}]},
               "patient": {"reference": f"Patient/p{n}"},
               "occurrenceDateTime": (now - timedelta(days=(n + 300 * k) % 3000)).isoformat()}


def _report(n: int, cid: str, diagnosed: datetime, fac: str) -> Iterator[Json]:
    """The 网络直报 Task of 3 cases in 4 (1 in 5 of them after the 24-hour deadline)."""
    if n % 4 == 0:
        return
    at = diagnosed + timedelta(hours=30 if n % 5 == 0 else 3)
    yield {
        "resourceType": "Task", "id": f"t{cid}", "status": "completed", "intent": "order",
        "meta": {"source": f"urn:qyhie:facility:{fac}"},
        "code": {"coding": [{"system": TASK_SYSTEM, "code": REPORT_TASK, "display": "传染病网络直报"}]},
        "focus": {"reference": f"Condition/{cid}"}, "for": {"reference": f"Patient/p{n}"},
        "authoredOn": at.isoformat(), "executionPeriod": {"end": at.isoformat()},
    }


def organizations() -> list[Json]:
    return [{"resourceType": "Organization", "id": f"org-{code}", "name": name,
             "identifier": [{"system": "urn:qyhie:facility", "value": code}]} for code, name in FACILITIES]


def audit_event(i: int, residents: int, now: datetime) -> Json:
    """An AuditEvent shaped like `hie_server.auth.audit.audit_event` (a read of a resident's record)."""
    pid = f"p{(i * 7) % residents}"
    user = f"doctor{i % 300:03d}"
    return {
        "resourceType": "AuditEvent", "id": f"ae{i}",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction",
                     "code": ("read", "search", "everything")[i % 3]}],
        "action": "R" if i % 3 == 0 else "E",
        "recorded": (now - timedelta(seconds=i * 37 % (365 * 86400))).isoformat(timespec="milliseconds"),
        "outcome": "4" if i % 40 == 0 else "0",
        "agent": [{"requestor": True, "who": {"identifier": {"system": "urn:qyhie:user", "value": user}},
                   "altId": "hie-workbench", "name": user,
                   "network": {"address": f"10.0.{i % 200}.{i % 250 + 1}", "type": "2"}}],
        "source": {"site": "qyhie", "observer": {"display": "hie-server"}},
        "entity": [{"what": {"reference": f"Patient/{pid}"},
                    "type": {"system": ENTITY_TYPE, "code": "1"}}],
    }


def check_shapes(now: datetime) -> None:
    """Validate one of each generated shape with the store's own validator (FHIR R4B).
    Raises: InvalidInput / Unprocessable on a shape the store would refuse."""
    shapes = [*resident(3, now), *resident(7, now, chronic=True), *organizations(), audit_event(1, 10, now)]
    for doc in shapes:
        validate_resource({k: v for k, v in doc.items() if k != "id"})


class BulkWriter:
    """Resources (version 1) with history and index rows, and EMPI records, in one transaction per
    `flush` on one connection of `store`."""

    def __init__(self, store: SqlStore, rules: MatchRules) -> None:
        self.store = store
        self.rules = rules
        self.registry = get_registry(store.settings.default_timezone)
        self.docs: list[Json] = []
        self.empi: list[tuple[str, str, Json]] = []
        self.written = 0

    def add(self, doc: Json) -> None:
        self.docs.append(doc)

    def add_resident(self, source: Json) -> None:
        """A source Patient with its new golden Patient (`g<n>`) and EMPI record."""
        golden_id = "g" + source["id"][1:]
        linked = with_link(source, "refer", golden_id, replace_type=True)
        self.docs.append(linked)
        self.docs.append(compose_golden(golden_id, [linked]))
        self.empi.append((source["id"], golden_id, linked))

    def flush(self, at: datetime) -> None:
        rows, history, items = [], [], []
        for doc in self.docs:
            stored, content = stamp(doc, doc["id"], 1, at)
            rows.append({"resource_type": doc["resourceType"], "id": doc["id"], "version_id": 1,
                         "last_updated": at, "deleted": False, "content": content})
            history.append({**rows[-1], "method": "POST"})
            items.append((doc["resourceType"], doc["id"], extract_index(stored, self.registry)))
        records, blocks, links = [], [], []
        for source_id, golden_id, doc in self.empi:
            features = extract(doc)
            records.append({"source_id": source_id, "golden_id": golden_id, "updated_at": at,
                            "features": orjson.dumps(features.to_json()).decode()})
            blocks.extend({"key": k, "source_id": source_id}
                          for k in dict.fromkeys(blocking_keys(features, self.rules.blocking.keys)))
            links.append({"source_id": source_id, "golden_id": golden_id, "score": None, "rule": "new",
                          "created_at": at, "created_by": "empi"})
        with self.store.engine.begin() as conn:
            bulk_insert(conn, resource_table, rows)
            bulk_insert(conn, resource_history_table, history)
            write_indexes(conn, items, replace=False)
            bulk_insert(conn, record_table, records)
            bulk_insert(conn, block_table, blocks)
            if links:  # serial id: COPY (bulk_insert on PostgreSQL) would send NULL for it
                conn.execute(link_table.insert(), links)
        self.written += len(rows)
        self.docs.clear()
        self.empi.clear()


def load(store: SqlStore, rules: MatchRules, total: int, *, batch: int = 20_000, audits: int = 0) -> int:
    """About `total` resources: residents (see module docstring), then `audits` AuditEvents.
    Returns the number of residents. Units of `batch` resources, one transaction each."""
    now = datetime.now(CHINA).replace(microsecond=0)
    check_shapes(now)
    at = datetime.now(UTC)
    writer = BulkWriter(store, rules)
    for doc in organizations():
        writer.add(doc)
    started, n = time.perf_counter(), 0
    while writer.written + len(writer.docs) + audits < total:
        docs = resident(n, now, chronic=n % 5000 == 7)
        writer.add_resident(next(docs))
        for doc in docs:
            writer.add(doc)
        n += 1
        if len(writer.docs) >= batch:
            writer.flush(at)
            rate = writer.written / (time.perf_counter() - started)
            print(f"  {writer.written:,} resources, {rate:,.0f}/s", flush=True)
    for i in range(audits):
        writer.add(audit_event(i, n, now))
        if len(writer.docs) >= batch:
            writer.flush(at)
    writer.flush(at)
    return n
