"""`Translator.translate_coding` over the coded elements of the sample feed, and the
unmapped-code log."""

from __future__ import annotations

from pathlib import Path

import pytest

from terminology import MemoryUnmappedLog, TerminologyIndex, Translator, source_system
from terminology.canonical import ADMINISTRATIVE_GENDER, BASE, ICD10, ICD10_CN, LOINC, SEX, V3_ACT_CODE


def _segments(samples_dir: Path) -> list[tuple[str, list[str]]]:
    """(sending facility, fields) of every segment of the sample feed (GB 18030 or UTF-8 by MSH-18)."""
    out = []
    for path in sorted((samples_dir / "feed-small" / "feeds").glob("*/*.hl7")):
        if path.parent.name == "BAD":
            continue
        raw = path.read_bytes()
        charset = "gb18030" if b"GB 18030" in raw.split(b"\r", 1)[0] else "utf-8"
        segments = [s.split("|") for s in raw.decode(charset).split("\r") if s]
        sender = segments[0][3].split("^")[0]
        out += [(sender, fields) for fields in segments]
    return out


def test_every_lab_and_diagnosis_code_of_the_sample_feed_gets_a_standard_code(
    index: TerminologyIndex, samples_dir: Path
) -> None:
    translator = Translator(index)
    seen = 0
    for sender, fields in _segments(samples_dir):
        if fields[0] == "OBX":
            code, display, system = ([*fields[3].split("^"), "", ""])[:3]
            codings = translator.translate_coding(sender, system, code, display)
            assert [c["system"] for c in codings] == [LOINC], (sender, code)
            seen += 1
        elif fields[0] == "DG1":
            code, display, system = ([*fields[3].split("^"), "", ""])[:3]
            original = source_system(sender, system, code)
            codings = translator.translate_coding(sender, system, code, display)
            if original == ICD10:
                assert codings == [], code  # already a WHO code: nothing to add
            else:
                assert original == ICD10_CN and [c["system"] for c in codings] == [ICD10], code
            seen += 1
    assert seen > 250
    assert len(translator.log.list()) == 0


def test_lab_codes_map_to_loinc_per_sender(index: TerminologyIndex) -> None:
    translator = Translator(index)
    assert translator.translate_coding("QYRMYY", "L", "HGB", "血红蛋白") == [
        {"system": LOINC, "code": "718-7", "display": "Hemoglobin [Mass/volume] in Blood"}
    ]
    assert translator.translate_coding("YDRMYY", "L", "GLU", "葡萄糖")[0]["code"] == "14749-6"
    assert translator.translate_coding("UNKNOWN", "L", "HGB", "血红蛋白") == []
    assert [(u.sender, u.code) for u in translator.log.list()] == [("UNKNOWN", "HGB")]


def test_sex_and_patient_class_through_the_default_map(index: TerminologyIndex) -> None:
    translator = Translator(index)
    male = translator.translate_coding("QYRMYY", "HL70001", "男", None)
    assert {(c["system"], c["code"]) for c in male} == {(SEX, "1"), (ADMINISTRATIVE_GENDER, "male")}
    assert {(c["system"], c["code"]) for c in translator.translate_coding("TTWSY", "HL70001", "F", None)} == {
        (SEX, "2"),
        (ADMINISTRATIVE_GENDER, "female"),
    }
    inpatient = translator.translate_coding("QYRMYY", "HL70004", "住院", None)
    assert inpatient == [{"system": V3_ACT_CODE, "code": "IMP", "display": "inpatient encounter"}]


@pytest.mark.parametrize(
    ("code", "who"), [("I10.x00x002", "I10"), ("E11.900", "E11.9"), ("U07.100", "U07.1"), ("A90", "A97.9")]
)
def test_chinese_icd10_codes_keep_original_and_add_who(index: TerminologyIndex, code: str, who: str) -> None:
    assert source_system("QYRMYY", "ICD10", code) == ICD10_CN
    codings = Translator(index).translate_coding("QYRMYY", "ICD10", code, "原诊断")
    assert [(c["system"], c["code"]) for c in codings] == [(ICD10, who)]


def test_unmapped_local_codes_are_counted_per_sender(index: TerminologyIndex) -> None:
    log = MemoryUnmappedLog()
    translator = Translator(index, log)
    for _ in range(3):
        assert translator.translate_coding("QYRMYY", "L", "DX-CHEST", "胸部正位片") == []
    translator.translate_coding("LZRMYY", "L", "DX-CHEST", None)
    translator.translate_coding("LZRMYY", "ICD10", "ZZZ.9", "无效")
    assert translator.translate_coding("LZRMYY", "CVX", "20", "百白破疫苗") == []  # standard, not checked
    listed = [(u.sender, u.system, u.code, u.count) for u in log.list()]
    assert listed == [
        ("QYRMYY", f"{BASE}/CodeSystem/local/QYRMYY/L", "DX-CHEST", 3),
        ("LZRMYY", ICD10, "ZZZ.9", 1),
        ("LZRMYY", f"{BASE}/CodeSystem/local/LZRMYY/L", "DX-CHEST", 1),
    ]
    assert log.list("QYRMYY")[0].display == "胸部正位片"


def test_bad_sender_is_refused(index: TerminologyIndex) -> None:
    with pytest.raises(ValueError, match="sender"):
        Translator(index).translate_coding("清远/../x", "L", "HGB", None)


def test_hl7_mapping_system_uris_are_understood(index: TerminologyIndex) -> None:
    from terminology import normalize_system

    assert normalize_system("X", "urn:qyhie:facility:QYRMYY:code") == f"{BASE}/CodeSystem/local/QYRMYY/L"
    assert (
        normalize_system("X", "urn:qyhie:facility:QYRMYY:code:99QY") == f"{BASE}/CodeSystem/local/QYRMYY/99QY"
    )
    assert normalize_system("QYRMYY", "http://hl7.org/fhir/sid/icd-10-cn") == ICD10_CN
    assert normalize_system("QYRMYY", None) == normalize_system("QYRMYY", "L")
    translator = Translator(index)
    assert (
        translator.translate_coding("QYRMYY", "urn:qyhie:facility:QYRMYY:code", "HGB", None)[0]["code"]
        == "718-7"
    )


def test_ethnic_group_names_map_to_gb_t_3304(index: TerminologyIndex) -> None:
    from terminology.canonical import ETHNICITY

    translator = Translator(index)
    assert translator.translate_coding("SJWSY", "HL70189", "瑶族", None) == [
        {"system": ETHNICITY, "code": "13", "display": "瑶族"}
    ]
    assert translator.translate_coding("SJWSY", "HL70189", "壮", None)[0]["code"] == "08"
