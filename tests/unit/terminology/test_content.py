"""Sanity of the shipped content: national value sets complete, ICD-10 roll-ups, LOINC
designations, townships of the sample feed, UCUM units, resources valid FHIR R4B."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from terminology import TerminologyIndex, is_valid_unit, rollup
from terminology.canonical import DIVISION, ETHNICITY, ICD10, LOINC, NOTIFIABLE, SEX
from terminology.content import icd10_in

Json = dict[str, Any]


def test_every_resource_validates_as_fhir_r4b_and_has_unique_id(resources: list[Json]) -> None:
    ids = [(r["resourceType"], r["id"]) for r in resources]
    assert len(ids) == len(set(ids))
    for resource in resources:
        if resource["id"] == "icd-10":
            continue  # 12,542 concepts: validated by the store on load; checked for shape below
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def test_gb_t_3304_has_all_56_ethnic_groups(index: TerminologyIndex) -> None:
    cs = index.codesystem(ETHNICITY)
    assert cs is not None
    numbered = [code for code in cs.concepts if code not in ("97", "98")]
    assert numbered == [f"{n:02d}" for n in range(1, 57)]
    assert cs.concepts["01"].display == "汉族"
    assert cs.concepts["08"].display == "壮族"
    assert cs.concepts["13"].display == "瑶族"
    assert cs.concepts["56"].display == "基诺族"
    assert len({c.display for c in cs.concepts.values()}) == 58


def test_sex_codes(index: TerminologyIndex) -> None:
    cs = index.codesystem(SEX)
    assert cs is not None and {c: cs.concepts[c].display for c in cs.concepts} == {
        "0": "未知的性别",
        "1": "男性",
        "2": "女性",
        "9": "未说明的性别",
    }


@pytest.mark.parametrize(
    ("code", "who", "exact"),
    [
        ("I10.x00x002", "I10", False),
        ("E11.900", "E11.9", False),
        ("U07.100", "U07.1", False),
        ("E11.900x001", "E11.9", False),
        ("A90", "A97.9", False),
        ("E119", "E11.9", True),
        ("A15.0", "A15.0", True),
        ("j11.1", "J11.1", True),
    ],
)
def test_icd10_rollup(code: str, who: str, exact: bool) -> None:
    rolled = rollup(code)
    assert rolled is not None
    assert (rolled.original, rolled.who_code, rolled.exact) == (code, who, exact)


@pytest.mark.parametrize("code", ["XYZ", "", "Q", "I", "A15-A19", "99.1"])
def test_icd10_rollup_rejects_non_codes(code: str) -> None:
    assert rollup(code) is None


def test_icd10_hierarchy(index: TerminologyIndex) -> None:
    cs = index.codesystem(ICD10)
    assert cs is not None and len(cs.concepts) > 12000
    assert cs.ancestors("B16.9") == {"B16", "B15-B19", "I"}
    assert "M54.5" in cs.descendants("XIII")
    assert cs.concepts["IX"].display_in("zh") == "循环系统疾病"


def test_loinc_subset_has_chinese_designations(index: TerminologyIndex) -> None:
    cs = index.codesystem(LOINC)
    assert cs is not None
    expected = {
        "718-7": "血红蛋白",
        "6690-2": "白细胞计数",
        "777-3": "血小板计数",
        "789-8": "红细胞计数",
        "2345-7": "葡萄糖(质量浓度)",
        "1742-6": "丙氨酸氨基转移酶",
        "2160-0": "肌酐(质量浓度)",
        "2093-3": "总胆固醇(质量浓度)",
        "4548-4": "糖化血红蛋白",
        "5196-1": "乙型肝炎病毒表面抗原",
        "8480-6": "收缩压",
    }
    for code, zh in expected.items():
        assert cs.concepts[code].display_in("zh") == zh
    for concept in cs.concepts.values():
        assert concept.display_in("zh") != concept.display, concept.code
        for unit in concept.property_values("unit"):
            assert is_valid_unit(unit), (concept.code, unit)


@pytest.mark.parametrize(
    "unit", ["10*9/L", "g/L", "mmol/L", "umol/L", "%", "U/L", "mm[Hg]", "/min", "10*12/L"]
)
def test_ucum_accepts_feed_units(unit: str) -> None:
    assert is_valid_unit(unit)


@pytest.mark.parametrize("unit", ["mmHg", "", " g/L", "g/L ", "xyz", "10*9/LL"])
def test_ucum_rejects_bad_units(unit: str) -> None:
    assert not is_valid_unit(unit)


def test_sample_feed_towns_are_qingyuan_townships(index: TerminologyIndex, samples_dir: Path) -> None:
    cs = index.codesystem(DIVISION)
    assert cs is not None
    for county in ("441802", "441803", "441821", "441823", "441825", "441826", "441881", "441882"):
        assert cs.parents[county] == ("441800",)
    residents = (samples_dir / "feed-small" / "residents.jsonl").read_text(encoding="utf-8").splitlines()
    for line in residents:
        person = json.loads(line)
        code = f"{person['county']}-{person['town']}"
        assert code in cs.concepts, code
        assert cs.parents[code] == (person["county"],)
    assert cs.concepts["441825"].display == "连山壮族瑶族自治县"


@pytest.mark.parametrize(
    ("disease", "klass", "icd"),
    [
        ("霍乱", "甲类", "A00.9"),
        ("鼠疫", "甲类", "A20.0"),
        ("肺结核", "乙类", "A15.0"),
        ("病毒性肝炎", "乙类", "B16.9"),
        ("新型冠状病毒感染", "乙类", "U07.1"),
        ("流行性感冒", "丙类", "J11.1"),
        ("登革热", "乙类", "A97.9"),
        ("除霍乱、细菌性和阿米巴性痢疾、伤寒和副伤寒以外的感染性腹泻病", "丙类", "A09"),
    ],
)
def test_notifiable_diseases(index: TerminologyIndex, disease: str, klass: str, icd: str) -> None:
    cs = index.codesystem(NOTIFIABLE)
    assert cs is not None
    concept = next(c for c in cs.concepts.values() if c.display == disease)
    assert concept.property_values("class") == [klass]
    assert any(icd10_in(spec, icd) for spec in concept.property_values("icd10"))
    who = index.codesystem(ICD10)
    assert who is not None and who.find(icd) is not None
