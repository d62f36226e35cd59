"""Issue 5 "Done when" (ingestion): the shared sample feed ingested with the terminology
service wired as in `hie serve`; checked through the FHIR API: LOINC next to the local codes
on lab Observations and DiagnosticReports, ICD-10 on Conditions (国家临床版 codes rolled up,
original kept), GB/T codings on Patients, unmapped codes counted per sender and listed by
`hie terminology unmapped`, and `hie terminology remap` applying a mapping added later.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from feed_world import World, all_pages, build_world, get, truth

pytestmark = pytest.mark.slow

Json = dict[str, Any]
LOCAL = "https://hie.gdqy.gov.cn/fhir/CodeSystem/local"
LOINC = "http://loinc.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD10_CN = "urn:oid:2.16.156.10011.2.3.3.11"
SEX = "urn:oid:2.16.156.10011.2.3.3.4"
MARITAL = "urn:oid:2.16.156.10011.2.3.3.5"
ETHNICITY = "urn:oid:2.16.156.10011.2.3.3.3"
SEX_EXT = "https://hie.gdqy.gov.cn/fhir/StructureDefinition/patient-sex"
ETHNICITY_EXT = "https://hie.gdqy.gov.cn/fhir/StructureDefinition/patient-ethnicity"
CLASS_EXT = "https://hie.gdqy.gov.cn/fhir/StructureDefinition/encounter-patient-class"
FEE_SYSTEM = "https://hie.gdqy.gov.cn/fhir/CodeSystem/medical-service-item"
"""A regional fee-item code system (test data: where a DFT registration fee is mapped to)."""
HIE = [sys.executable, "-c", "from hie_server.cli import main; main()"]
LAB_LOINC = {
    "HGB": "718-7",
    "WBC": "6690-2",
    "PLT": "777-3",
    "GLU": "14749-6",
    "ALT": "1742-6",
    "CREA": "14682-9",
    "TC": "14647-2",
    "HBA1C": "4548-4",
}
"""What the shipped sender maps say for the sample feed's lab codes."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, str]]:
    from ehr_store import upgrade_schema

    url = f"sqlite:///{tmp_path_factory.mktemp('terminology') / 'hie.db'}"
    upgrade_schema(url)
    built = build_world(url)
    try:
        yield built, url
    finally:
        built.close()


def hie(url: str, *args: str) -> str:
    """Run `hie ARGS --database-url URL`; asserts exit 0, returns stdout (wide, for tables)."""
    done = subprocess.run(
        [*HIE, *args, "--database-url", url],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "250"},
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"hie {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout


def codings(concept: Json | None, system: str) -> list[str]:
    return [c["code"] for c in (concept or {}).get("coding", []) if c.get("system") == system]


def test_lab_observations_carry_loinc_next_to_the_local_code(world: tuple[World, str]) -> None:
    client = world[0].client
    labs = list(all_pages(client, "Observation", category="laboratory", _count="100"))
    assert len(labs) > 100
    for obs in labs:
        first = obs["code"]["coding"][0]
        facility = obs["meta"]["source"].removeprefix("urn:qyhie:facility:")
        assert first["system"] == f"{LOCAL}/{facility}/L", obs["code"]  # the code as sent comes first
        assert codings(obs["code"], LOINC) == [LAB_LOINC[first["code"]]], obs["code"]
        quantity = obs.get("valueQuantity")
        if quantity and quantity.get("unit"):
            assert quantity.get("system") == "http://unitsofmeasure.org", quantity
    hgb = {o["id"] for o in labs if o["code"]["coding"][0]["code"] == "HGB"}
    by_loinc = {o["id"] for o in all_pages(client, "Observation", code=f"{LOINC}|718-7", _count="100")}
    assert hgb and by_loinc == hgb


def test_diagnostic_reports_carry_loinc_panels(world: tuple[World, str]) -> None:
    reports = list(all_pages(world[0].client, "DiagnosticReport", _count="100"))
    oru = sum(1 for r in truth() if r["type"] == "ORU^R01")
    assert len(reports) == oru
    for report in reports:
        assert report["code"]["coding"][0]["system"].startswith(LOCAL)
        assert len(codings(report["code"], LOINC)) == 1, report["code"]


def test_conditions_carry_who_icd10(world: tuple[World, str]) -> None:
    conditions = list(all_pages(world[0].client, "Condition", _count="100"))
    diagnosed = {r["diag"] for r in truth() if r.get("diag")}
    assert {cond["code"]["coding"][0]["code"] for cond in conditions} == diagnosed  # as sent, first
    for cond in conditions:
        assert len(codings(cond["code"], ICD10)) == 1, cond["code"]  # a WHO code on every diagnosis
    dengue = [c["code"] for c in conditions if c["code"]["coding"][0]["code"] == "A90"]
    assert dengue and all(  # Chinese editions still send A90; WHO ICD-10 2019 has A97
        codings(c, ICD10_CN) == ["A90"] and codings(c, ICD10) == ["A97.9"] for c in dengue
    )
    tb = get(world[0].client, "Condition", code=f"{ICD10}|A15.0", _summary="count")["total"]
    assert tb == sum(1 for r in truth() if r.get("diag") == "A15.0")


def test_patients_carry_gbt_sex(world: tuple[World, str]) -> None:
    sources = [
        p
        for p in all_pages(world[0].client, "Patient", _count="100")
        if "golden" not in [t.get("code") for t in p.get("meta", {}).get("tag", [])]
    ]
    assert len(sources) > 50
    for patient in sources:
        if patient.get("gender") in ("male", "female"):
            ext = [e for e in patient.get("extension", []) if e["url"] == SEX_EXT]
            assert len(ext) == 1, patient.get("extension")
            concept = ext[0]["valueCodeableConcept"]
            assert codings(concept, SEX) == [{"male": "1", "female": "2"}[patient["gender"]]]
            assert concept["coding"][0]["system"] == "http://terminology.hl7.org/CodeSystem/v2-0001"


MESSAGE = (
    "MSH|^~\\&|HIS|QYRMYY^清远市人民医院|QYHIE|QYWJJ|20261101083000+0800||ADT^A01^ADT_A01|QYTERM0001|P|2.5"
    "|||AL|NE|CHN|UNICODE UTF-8\r"
    "EVN|A01|20261101083000+0800\r"
    "PID|1||QY7700001^^^QYRMYY^MR||蓝^小梅^^^^^L||19800512|女|||新村^石角镇^清城区^广东省^^CHN^H^^441802"
    "||^PRN^CP^^^^^^^^^13800001234|||已婚||||||瑶族\r"  # PID-16 marital status, PID-22 ethnic group
    "PV1|1|住院|内科^^^QYRMYY||||||||||||||||V77000001|||||||||||||||||||||||||20261101083000+0800\r"
    "DG1|1||E11.900^2型糖尿病^ICD10|||F\r"
)


def test_national_edition_codes_marital_status_ethnicity_and_class(world: tuple[World, str]) -> None:
    w = world[0]
    result = w.ingest.ingest(MESSAGE.encode("utf-8"), transport="test")
    assert result.outcome == "AA", result.ack.decode()
    patient = get(w.client, "Patient/QYRMYY-QY7700001")
    assert codings(patient["maritalStatus"], MARITAL) == ["20"]
    ethnicity = next(e for e in patient["extension"] if e["url"] == ETHNICITY_EXT)["valueCodeableConcept"]
    assert codings(ethnicity, ETHNICITY) == ["13"] and ethnicity["coding"][0]["code"] == "瑶族"
    sex = next(e for e in patient["extension"] if e["url"] == SEX_EXT)["valueCodeableConcept"]
    assert codings(sex, SEX) == ["2"] and patient["gender"] == "female"
    (entry,) = get(w.client, "Encounter", subject="Patient/QYRMYY-QY7700001")["entry"]
    encounter = entry["resource"]
    assert encounter["class"]["code"] == "IMP"
    sent_class = next(e for e in encounter["extension"] if e["url"] == CLASS_EXT)["valueCodeableConcept"]
    assert sent_class["coding"][0]["code"] == "住院"
    found = get(w.client, "Condition", subject="Patient/QYRMYY-QY7700001")["entry"]
    code = found[0]["resource"]["code"]
    assert codings(code, ICD10_CN) == ["E11.900"] and codings(code, ICD10) == ["E11.9"]


FEE_MESSAGE = (
    "MSH|^~\\&|HIS|QYRMYY^清远市人民医院|QYHIE|QYWJJ|20261102090000+0800||DFT^P03^DFT_P03|QYTERM0002|P|2.4"
    "|||||CHN|UNICODE UTF-8\r"
    "EVN|P03|20261102090000+0800\r"
    "PID|1||QY7700002^^^QYRMYY^MR||冯^志坚^^^^^L||19720304|M\r"
    "PV1|1|O|内科^^^QYRMYY||||||||||||||||V77000002\r"
    "FT1|1|||20261102090000+0800||CG|110100001^挂号费^L|||1|1.00&CNY\r"
)


def test_unmapped_codes_are_counted_listed_and_remapped(world: tuple[World, str], tmp_path: Path) -> None:
    w, url = world
    assert w.ingest.ingest(FEE_MESSAGE.encode("utf-8"), transport="test").outcome == "AA"
    orders = Counter(r["facility"] for r in truth() if r["type"] == "ORM^O01")
    unmapped = {(u.sender, u.code): u.count for u in w.terminology.unmapped()}
    assert {s: n for (s, code), n in unmapped.items() if code == "DX-CHEST"} == dict(orders)
    assert unmapped[("QYRMYY", "110100001")] == 1  # a registration fee (DFT FT1-7)
    listed = hie(url, "terminology", "unmapped")
    assert "DX-CHEST" in listed and "QYRMYY" in listed
    # an administrator maps QYRMYY's chest X-ray code, then applies it to what is stored
    csv_text = hie(url, "terminology", "export", "--source", "QYRMYY")
    # the shipped map lacks it: listed after the map's rows with empty target columns, to fill in
    assert any(",DX-CHEST," in line and line.endswith(",,,,") for line in csv_text.splitlines())
    mapping = tmp_path / "QYRMYY.csv"
    mapping.write_text(
        csv_text.rstrip("\n")
        + "\nL,DX-CHEST,胸部正位片,http://loinc.org,24648-8,XR Chest PA upright,equivalent"
        + f"\nL,110100001,挂号费,{FEE_SYSTEM},110100001,挂号费,equivalent\n",
        encoding="utf-8",
    )
    hie(url, "terminology", "load", "--conceptmap", str(mapping), "--source", "QYRMYY")
    assert "resources updated" in hie(url, "terminology", "remap", "--source", "QYRMYY")
    remapped = list(all_pages(w.client, "ServiceRequest", code=f"{LOINC}|24648-8", _count="100"))
    assert len(remapped) == orders["QYRMYY"]
    for request in remapped:
        assert request["code"]["coding"][0] == {
            "system": f"{LOCAL}/QYRMYY/L",
            "code": "DX-CHEST",
            "display": "胸部正位片",
        }
    (fee,) = [e["resource"] for e in get(w.client, "ChargeItem", subject="Patient/QYRMYY-QY7700002")["entry"]]
    assert codings(fee["code"], FEE_SYSTEM) == ["110100001"], fee["code"]
    left = hie(url, "terminology", "unmapped", "--source", "QYRMYY")
    assert "DX-CHEST" not in left
    assert "DX-CHEST" in hie(url, "terminology", "unmapped", "--source", "JTWSY")
