"""The database-side surveillance aggregates (`ehr_store.IndexAggregates`, used by
`SurveillanceService` on SQL stores) give the same cases, counts, overdue list and ILI share as
paging every Condition and Encounter through Python, on SQLite and PostgreSQL: the sample feed
plus edge cases (a notifiable code after a non-notifiable first ICD-10 coding: not a case, a Chinese-
edition code, an Encounter just after midnight China time sent in UTC, an inpatient visit, a visit
without a start, a subject that is a Group, a deleted Patient, a Patient who moves county after the
county read model was filled); the read model (`resource_fact`) follows updates that move a visit
or change a diagnosis, deletions, a write committed after a refresh but stamped before it, and a
restart (kept in the database)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from adapters import IngestService
from ehr_store import SqlStore, Store, StoreSettings
from ehr_store.read_model import MARGIN
from ehr_store.tables import resource_table
from hie_server.surveillance import SurveillanceService, SurveillanceSettings, report_task
from terminology import TerminologyService, canonical

REPO = Path(__file__).resolve().parents[4]
SAMPLES = Path(os.environ.get("HIE_SAMPLES_DIR", REPO / ".." / "shared" / "samples")) / "feed-small"
PERIOD = (date(2026, 1, 1), date(2026, 12, 31))
NOW = datetime(2026, 12, 31, tzinfo=UTC)
AMB = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}


def _patient(pid: str, county: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "name": [{"family": "测", "given": ["试"]}],
        "gender": "female",
        "address": [{"use": "work", "district": "440100"}, {"use": "home", "district": county}],
    }


def _encounter(subject: str, start: str | None, code: dict[str, str] = AMB) -> dict[str, Any]:
    doc: dict[str, Any] = {"resourceType": "Encounter", "status": "finished", "class": code}
    doc["subject"] = {"reference": subject}
    doc["period"] = {"start": start} if start else {"end": "2026-03-02T10:00:00+08:00"}
    return doc


def _condition(subject: str, encounter: str, codes: list[tuple[str, str]], recorded: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "subject": {"reference": subject},
        "encounter": {"reference": encounter},
        "code": {"coding": [{"system": s, "code": c} for s, c in codes]},
        "recordedDate": recorded,
    }


def edge_cases(store: Store) -> None:
    icd = canonical.ICD10
    with store.unit_of_work(write=True) as uow:
        put = uow.resources.update
        put("Patient", "agg-p1", {**_patient("agg-p1", "441821"), "id": "agg-p1"})
        put("Patient", "agg-p2", {**_patient("agg-p2", "441802"), "id": "agg-p2"})
        put("Patient", "agg-gone", {**_patient("agg-gone", "441803"), "id": "agg-gone"})
        visits = {
            "agg-e1": _encounter("Patient/agg-p1", "2026-03-01T16:30:00Z"),  # 00:30 on 2 March in China
            "agg-e2": _encounter("Patient/agg-p2", "2026-03-02"),
            "agg-e3": _encounter("Patient/agg-p1", "2026-03-03T09:00:00+08:00", {**AMB, "code": "IMP"}),
            "agg-e4": _encounter("Patient/agg-p1", None),
            "agg-e5": _encounter("Group/agg-g1", "2026-03-04T09:00:00+08:00"),
            "agg-e6": _encounter("Patient/agg-gone", "2026-03-04T09:00:00+08:00"),
        }
        for eid, doc in visits.items():
            put("Encounter", eid, {**doc, "id": eid})
        conditions = {
            "agg-c1": _condition(
                "Patient/agg-p1", "Encounter/agg-e1", [(icd, "I10"), (icd, "A09")], "2026-03-02"
            ),
            "agg-c2": _condition(
                "Patient/agg-p2", "Encounter/agg-e2", [(icd, "J11.1")], "2026-03-02T11:00:00+08:00"
            ),
            "agg-c3": _condition(
                "Patient/agg-p2", "Encounter/agg-e2", [(canonical.ICD10_CN, "A15.000x001")], "2026-03-02"
            ),
            "agg-c4": _condition("Patient/agg-gone", "Encounter/agg-e6", [(icd, "J06.9")], "2026-03-04"),
            "agg-c5": _condition("Group/agg-g1", "Encounter/agg-e5", [(icd, "J11.1")], "2026-03-04"),
        }
        for cid, doc in conditions.items():
            put("Condition", cid, {**doc, "id": cid})
        uow.commit()


@pytest.fixture(params=["sqlite", "postgresql"])
def fed(request: pytest.FixtureRequest) -> Iterator[tuple[Store, TerminologyService]]:
    if not SAMPLES.is_dir():
        pytest.skip(f"sample feed not found at {SAMPLES}")
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_store_url")
    store = SqlStore(StoreSettings(database_url=url))
    terminology = TerminologyService(store)
    terminology.load_content()
    ingest = IngestService(store, terminology=terminology)
    for path in sorted(SAMPLES.glob("feeds/*/*.hl7")):
        ingest.ingest(path.read_bytes(), transport="file")
    edge_cases(store)
    try:
        yield store, terminology
    finally:
        store.close()


def both(store: Store, terminology: TerminologyService) -> tuple[SurveillanceService, SurveillanceService]:
    settings = SurveillanceSettings(pseudonym_key="test-key")
    fast, slow = (
        SurveillanceService(store, terminology, settings),
        SurveillanceService(store, terminology, settings),
    )
    slow.aggregates = None
    assert fast.aggregates is not None
    return fast, slow


def test_cases_counts_and_overdue_match_the_paged_path(fed: Any) -> None:
    fast, slow = both(*fed)
    for kwargs in ({}, {"county": "4418"}, {"disease": "C01"}):
        expected = slow.cases(*PERIOD, **kwargs)
        found = fast.cases(*PERIOD, **kwargs)
        assert [asdict(c) for c in found] == [asdict(c) for c in expected], kwargs
    cases = fast.cases(*PERIOD)
    sources = {s for c in cases for s in c.sources}
    assert len(cases) >= 40 and "Condition/agg-c3" in sources  # Chinese-edition code
    assert "Condition/agg-c1" not in sources  # the first ICD-10 coding decides (I10), as before
    assert fast.counts(cases) == slow.counts(slow.cases(*PERIOD))
    assert [c.case_id for c in fast.overdue(cases, NOW)] == [
        c.case_id for c in slow.overdue(slow.cases(*PERIOD), NOW)
    ]


def test_ili_share_matches_the_paged_path(fed: Any) -> None:
    store, terminology = fed
    fast, slow = both(store, terminology)
    for county in (None, "441821", "4418"):
        assert fast.ili(*PERIOD, county) == slow.ili(*PERIOD, county), county
    rows = {(r["week"], r["county"]): r for r in fast.ili(date(2026, 3, 1), date(2026, 3, 8))}
    assert rows[("2026-W10", "441821")]["visits"] >= 1  # 16:30Z on 1 March is Monday 2 March in China
    assert rows[("2026-W10", "unknown")]["ili_visits"] >= 1  # the Group's visit
    with store.unit_of_work(write=True) as uow:  # the county read model follows changes
        uow.resources.update("Patient", "agg-p1", {**_patient("agg-p1", "441882"), "id": "agg-p1"})
        uow.resources.delete("Patient", "agg-gone")
        uow.commit()
    assert fast.ili(*PERIOD) == slow.ili(*PERIOD)
    moved = {(r["week"], r["county"]) for r in fast.ili(date(2026, 3, 1), date(2026, 3, 8))}
    assert ("2026-W10", "441882") in moved and ("2026-W10", "441803") not in moved


def test_cached_cases_follow_writes(fed: Any) -> None:
    store, terminology = fed
    fast, slow = both(store, terminology)
    late = fast.overdue(fast.cases(*PERIOD), NOW)
    assert late and fast.cases(*PERIOD) == fast.cases(*PERIOD)
    case = late[0]
    with store.unit_of_work(write=True) as uow:  # reported in time now: no longer overdue
        uow.resources.create(report_task(case.sources[0], case.patient_id, case.deadline))
        uow.commit()
    after = [c.case_id for c in fast.overdue(fast.cases(*PERIOD), NOW)]
    assert case.case_id not in after
    assert after == [c.case_id for c in slow.overdue(slow.cases(*PERIOD), NOW)]


def _same(fast: SurveillanceService, slow: SurveillanceService) -> None:
    assert fast.ili(*PERIOD) == slow.ili(*PERIOD)
    assert [asdict(c) for c in fast.cases(*PERIOD)] == [asdict(c) for c in slow.cases(*PERIOD)]
    assert [c.case_id for c in fast.overdue(fast.cases(*PERIOD), NOW)] == [
        c.case_id for c in slow.overdue(slow.cases(*PERIOD), NOW)
    ]


def test_read_model_follows_updates_deletes_and_late_commits(fed: Any) -> None:
    store, terminology = fed
    fast, slow = both(store, terminology)
    assert fast.prepare() > 0 and fast.prepare() == 0  # built once, then nothing to re-derive
    _same(fast, slow)
    icd = canonical.ICD10
    with store.unit_of_work(write=True) as uow:
        put = uow.resources.update
        # ILI -> typhoid (notifiable, no longer ILI); a non-notifiable first coding -> notifiable
        put(
            "Condition",
            "agg-c2",
            {
                **_condition(
                    "Patient/agg-p2", "Encounter/agg-e2", [(icd, "A01.0")], "2026-03-02T11:00:00+08:00"
                ),
                "id": "agg-c2",
            },
        )
        put(
            "Condition",
            "agg-c1",
            {
                **_condition("Patient/agg-p1", "Encounter/agg-e1", [(icd, "A09")], "2026-03-02"),
                "id": "agg-c1",
            },
        )
        # an inpatient visit becomes outpatient; a visit moves out of the period
        put(
            "Encounter",
            "agg-e3",
            {**_encounter("Patient/agg-p1", "2026-03-03T09:00:00+08:00"), "id": "agg-e3"},
        )
        put("Encounter", "agg-e2", {**_encounter("Patient/agg-p2", "2025-06-01"), "id": "agg-e2"})
        uow.resources.delete("Condition", "agg-c3")
        uow.resources.delete("Encounter", "agg-e6")
        uow.commit()
    _same(fast, slow)
    sources = {s for c in fast.cases(*PERIOD) for s in c.sources}
    assert "Condition/agg-c1" in sources and "Condition/agg-c3" not in sources
    # a write committed after a refresh but stamped before it (a long transaction): the refresh
    # window overlaps the last MARGIN of stamps, so it is still picked up
    assert isinstance(store, SqlStore)
    with store.unit_of_work(write=True) as uow:
        uow.resources.update(
            "Condition",
            "agg-late",
            {
                **_condition("Patient/agg-p1", "Encounter/agg-e3", [(icd, "J11.1")], "2026-03-03"),
                "id": "agg-late",
            },
        )
        uow.commit()
    with store.engine.begin() as conn:
        stamp = datetime.now(UTC) - MARGIN / 2
        conn.execute(
            sa.update(resource_table).where(resource_table.c.id == "agg-late").values(last_updated=stamp)
        )
    _same(fast, slow)
    rows = {(r["week"], r["county"]): r for r in fast.ili(date(2026, 3, 1), date(2026, 3, 8))}
    assert rows[("2026-W10", "441821")]["ili_visits"] >= 1
    # stamped more than MARGIN before it committed: found by a full re-check only
    with store.unit_of_work(write=True) as uow:
        uow.resources.delete("Condition", "agg-late")
        uow.commit()
    with store.engine.begin() as conn:
        stamp = datetime.now(UTC) - 3 * MARGIN
        conn.execute(
            sa.update(resource_table).where(resource_table.c.id == "agg-late").values(last_updated=stamp)
        )
    assert fast.prepare() == 0 and fast.prepare(full=True) == 1
    _same(fast, slow)


def test_read_model_survives_a_restart_and_follows_report_deletions(fed: Any) -> None:
    store, terminology = fed
    fast, slow = both(store, terminology)
    assert fast.prepare() > 0
    late = fast.overdue(fast.cases(*PERIOD), NOW)
    case = late[0]
    with store.unit_of_work(write=True) as uow:
        task = uow.resources.create(report_task(case.sources[0], case.patient_id, case.deadline))
        uow.commit()
    assert case.case_id not in [c.case_id for c in fast.overdue(fast.cases(*PERIOD), NOW)]
    again = SqlStore(store.settings)  # a restarted server: the read model is kept in the database
    try:
        restarted, _ = both(again, TerminologyService(again))
        assert restarted.prepare() == 0
        with again.unit_of_work(write=True) as uow:
            uow.resources.delete("Task", task.id)
            uow.commit()
        assert case.case_id in [c.case_id for c in restarted.overdue(restarted.cases(*PERIOD), NOW)]
        _same(restarted, slow)
    finally:
        again.close()
