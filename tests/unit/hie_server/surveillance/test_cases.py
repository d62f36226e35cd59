"""Notifiable-disease surveillance on the sample feed (ingested with adapters.IngestService):
the cases truth.jsonl marks appear with the right disease, class and county; de-identified
extracts carry no identifiers; overdue detection; the epidemic curve is drawn."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters import IngestService
from ehr_store import MemoryStore, StoreSettings
from hie_server.surveillance import SurveillanceService, SurveillanceSettings, report_task
from terminology import TerminologyService

REPO = Path(__file__).resolve().parents[4]
SAMPLES = Path(os.environ.get("HIE_SAMPLES_DIR", REPO / ".." / "shared" / "samples")) / "feed-small"
EXPECTED = {  # ICD-10 sent -> (platform disease code, class)
    "A15.0": ("B13", "乙类"),
    "B16.9": ("B03", "乙类"),
    "J11.1": ("C01", "丙类"),
    "A90": ("B10", "乙类"),
    "A09": ("C10", "丙类"),
    "B01.9": ("Q01", "其他"),
}
PERIOD = (date(2026, 1, 1), date(2026, 12, 31))


@pytest.fixture(scope="module")
def fed() -> Iterator[tuple[SurveillanceService, MemoryStore, list[dict[str, Any]]]]:
    if not SAMPLES.is_dir():
        pytest.skip(f"sample feed not found at {SAMPLES}")
    store = MemoryStore(StoreSettings(database_url="memory://"))
    terminology = TerminologyService(store)
    terminology.load_content()
    ingest = IngestService(store, terminology=terminology)
    for path in sorted(SAMPLES.glob("feeds/*/*.hl7")):
        ingest.ingest(path.read_bytes(), transport="file")
    truth = [json.loads(line) for line in (SAMPLES / "truth.jsonl").read_text(encoding="utf-8").splitlines()]
    yield (
        SurveillanceService(store, terminology, SurveillanceSettings(pseudonym_key="test-key")),
        store,
        truth,
    )


def residents() -> dict[str, dict[str, Any]]:
    rows = [json.loads(x) for x in (SAMPLES / "residents.jsonl").read_text(encoding="utf-8").splitlines()]
    return {r["key"]: r for r in rows}


def written_conditions(store: MemoryStore, entry: dict[str, Any]) -> list[str]:
    with store.unit_of_work() as uow:
        msg = uow.messages.find_processed(None, entry["facility"], entry["control_id"])
        if msg is None:
            msg = next(
                (m for m in uow.messages.list(limit=1000) if m.control_id == entry["control_id"]), None
            )
    assert msg is not None and msg.status == "processed", entry
    return [r for r in msg.resources if r.startswith("Condition/")]


def test_truth_cases_appear_with_class_and_county(fed: Any) -> None:
    service, store, truth = fed
    cases = service.cases(*PERIOD)
    by_source = {s: c for c in cases for s in c.sources}
    people = residents()
    notifiable = [t for t in truth if t.get("notifiable")]
    assert len(notifiable) >= 40
    for entry in notifiable:
        refs = written_conditions(store, entry)
        case = next((by_source[r] for r in refs if r in by_source), None)
        assert case is not None, f"{entry['file']} ({entry['diag']}) not recognised"
        code, klass = EXPECTED[entry["diag"]]
        assert (case.disease_code, case.disease_class) == (code, klass), entry
        assert case.county == people[entry["person"]]["county"], entry
        assert case.facility == entry["facility"] and case.facility_name
    not_notifiable = {r for t in truth if t.get("notifiable") is False for r in written_conditions(store, t)}
    assert not not_notifiable & set(by_source)


def test_filters_by_county_and_disease(fed: Any) -> None:
    service, _, _ = fed
    every = service.cases(*PERIOD)
    tb = service.cases(*PERIOD, disease="B13")
    assert tb and all(c.disease_name == "肺结核" for c in tb)
    assert {c.case_id for c in service.cases(*PERIOD, disease="肺结核")} == {c.case_id for c in tb}
    county = every[0].county
    assert county
    local = service.cases(*PERIOD, county=county)
    assert local and all(c.county == county for c in local) and len(local) < len(every)


def test_deidentified_extract_has_no_identifiers(fed: Any) -> None:
    service, _, _ = fed
    cases = service.cases(*PERIOD)
    identified = service.extract(cases, "csv", identified=True)
    assert identified.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8
    text = identified.decode("utf-8-sig")
    assert "患者姓名" in text and "肺结核" in text
    secrets = {
        v for c in cases for v in (c.name, c.resident_id, c.phone, c.village, c.birth_date, c.patient_id) if v
    }
    assert any(s in text for s in secrets)
    for fmt in ("csv", "ndjson"):
        for shift in (False, True):
            out = service.extract(cases, fmt, identified=False, shift_dates=shift).decode("utf-8-sig")
            leaked = [s for s in secrets if s in out]
            assert not leaked, leaked[:3]
    rows = [orjson.loads(x) for x in service.extract(cases, "ndjson", identified=False).splitlines()]
    assert {"name", "resident_id", "phone", "village"}.isdisjoint(rows[0])
    assert all(r["age_band"] is None or "-" in r["age_band"] or r["age_band"] == "85+" for r in rows)
    table = list(csv.reader(io.StringIO(service.extract(cases, "csv", identified=False).decode("utf-8-sig"))))
    assert table[0][0] == "卡片编号(假名)" and len(table) == len(cases) + 1


def test_date_shift_is_per_person_and_bounded(fed: Any) -> None:
    service, _, _ = fed
    cases = service.cases(*PERIOD)[:10]
    plain = [orjson.loads(x) for x in service.extract(cases, "ndjson", identified=False).splitlines()]
    shifted = [
        orjson.loads(x)
        for x in service.extract(cases, "ndjson", identified=False, shift_dates=True).splitlines()
    ]
    for a, b in zip(plain, shifted, strict=True):
        delta = datetime.fromisoformat(b["diagnosis_time"]) - datetime.fromisoformat(a["diagnosis_time"])
        assert timedelta(days=1) <= abs(delta) <= timedelta(days=14)
        deadline = datetime.fromisoformat(b["deadline"]) - datetime.fromisoformat(a["deadline"])
        assert deadline == delta


def test_overdue_detection(fed: Any) -> None:
    service, store, _ = fed
    cases = service.cases(*PERIOD, disease="B13")
    assert all(c.deadline - c.diagnosis_time == timedelta(hours=24) for c in cases)
    first, second = cases[0], cases[1]
    with store.unit_of_work() as uow:
        uow.resources.create(
            report_task(first.case_id, first.patient_id, first.diagnosis_time + timedelta(hours=3))
        )
        uow.resources.create(
            report_task(second.case_id, second.patient_id, second.diagnosis_time + timedelta(hours=30))
        )
        uow.commit()
    again = {c.case_id: c for c in service.cases(*PERIOD, disease="B13")}
    now = datetime(2027, 1, 1, tzinfo=UTC)
    overdue = {c.case_id for c in service.overdue(list(again.values()), now)}
    assert first.case_id not in overdue and second.case_id in overdue
    assert again[first.case_id].reported_at is not None
    assert set(again) - {first.case_id} <= overdue
    early = service.overdue(list(again.values()), cases[-1].diagnosis_time + timedelta(hours=1))
    assert cases[-1].case_id not in {c.case_id for c in early}


def test_class_a_deadline_is_two_hours(fed: Any) -> None:
    service, _, _ = fed
    catalogue = service.catalogue()
    cholera, sars, lung_anthrax = (
        catalogue.for_icd10("A00.9"),
        catalogue.for_icd10("U04.9"),
        catalogue.for_icd10("A22.1"),
    )
    assert cholera and cholera.disease_class == "甲类" and cholera.deadline_hours(service.settings) == 2
    assert sars and sars.class_label == "乙类(按甲类管理)" and sars.deadline_hours(service.settings) == 2
    assert lung_anthrax and lung_anthrax.managed_as_class_a
    skin_anthrax = catalogue.for_icd10("A22.0")
    assert (
        skin_anthrax
        and not skin_anthrax.managed_as_class_a
        and skin_anthrax.deadline_hours(service.settings) == 24
    )
    assert catalogue.for_icd10("I10") is None and catalogue.for_icd10("A15.000x001").code == "B13"


def test_counts_curve_ili_and_coverage(fed: Any, tmp_path: Path) -> None:
    service, _, truth = fed
    cases = service.cases(*PERIOD)
    counts = service.counts(cases)
    assert sum(r["cases"] for r in counts) == len(cases) and counts[0]["week"].startswith("2026-W")
    png = service.curve(cases, "png")
    assert png.startswith(b"\x89PNG")
    (tmp_path / "curve.png").write_bytes(png)
    assert service.curve(cases, "svg").lstrip().startswith(b"<?xml")
    ili = service.ili(*PERIOD)
    assert ili and all(0 <= r["ili_share"] <= 1 and r["ili_visits"] <= r["visits"] for r in ili)
    assert sum(r["ili_visits"] for r in ili) >= 1
    coverage = service.coverage()
    vaccinations = sum(1 for t in truth if t["type"] == "VXU^V04")
    assert coverage and sum(r["vaccinated"] for r in coverage) <= vaccinations
    assert all(0 < r["coverage"] <= 1 for r in coverage)
