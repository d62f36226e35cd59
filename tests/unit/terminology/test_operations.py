"""Terminology operations against the FHIR R4B specification's examples of in/out Parameters.

Each test mirrors an example of the operation's page (same parameters and response
shape), using codes of the shipped content.
"""

from __future__ import annotations

import pytest
from tparams import all_of, get, params

from ehr_store import InvalidInput, NotFound, TooCostly
from terminology import (
    In,
    TerminologyIndex,
    codesystem_validate_code,
    expand,
    lookup,
    subsumes,
    translate,
    valueset_validate_code,
)
from terminology.canonical import BASE, ETHNICITY, ICD10, ICD10_CN, LOINC, NOTIFIABLE, SEX, UCUM

# --- CodeSystem/$lookup (spec example: GET [base]/CodeSystem/$lookup?system=http://loinc.org&code=1963-8)


def test_lookup_spec_example_shape(index: TerminologyIndex) -> None:
    result = lookup(index, In(query=[("system", LOINC), ("code", "718-7")]))
    assert result["resourceType"] == "Parameters"
    assert get(result, "name") == "LOINC"
    assert get(result, "display") == "Hemoglobin [Mass/volume] in Blood"
    designation = get(result, "designation")
    assert designation["language"] == "zh" and designation["value"] == "血红蛋白"


def test_lookup_by_coding_with_display_language(index: TerminologyIndex) -> None:
    result = lookup(index, params(coding={"system": ETHNICITY, "code": "13"}, displayLanguage="en"))
    assert get(result, "display") == "Yao"
    assert get(result, "version") == "1991"
    props = {p["code"]: p["value"] for p in all_of(result, "property")}
    assert props == {"abbreviation": "YA"}


def test_lookup_icd10_reports_parent_and_children_on_request(index: TerminologyIndex) -> None:
    query = [("system", ICD10), ("code", "E11"), ("property", "parent"), ("property", "child")]
    result = lookup(index, In(query=query))
    props = all_of(result, "property")
    assert {"code": "parent", "value": "E10-E14"} in props
    assert {"code": "child", "value": "E11.9"} in props


def test_lookup_chinese_edition_code_rolls_up(index: TerminologyIndex) -> None:
    result = lookup(index, params(system=ICD10_CN, code="I10.x00x002"))
    assert get(result, "display") == "Essential (primary) hypertension"
    assert get(result, "property")["value"]["code"] == "I10"


def test_lookup_unknown_code_and_missing_input(index: TerminologyIndex) -> None:
    with pytest.raises(NotFound):
        lookup(index, params(system=LOINC, code="0000-0"))
    with pytest.raises(NotFound, match="code system"):
        lookup(index, params(system="http://example.org/none", code="x"))
    with pytest.raises(InvalidInput):
        lookup(index, params(code="718-7"))
    with pytest.raises(InvalidInput):
        lookup(index, {"resourceType": "Patient"})


# --- $validate-code (spec example: ValueSet/23/$validate-code?system=http://loinc.org&code=1963-8&display=test)


def test_valueset_validate_code_wrong_display_spec_example(index: TerminologyIndex) -> None:
    result = valueset_validate_code(
        index, params(url=f"{BASE}/ValueSet/loinc-lab", system=LOINC, code="718-7", display="test")
    )
    assert get(result, "result") is False
    assert "test" in get(result, "message")
    assert get(result, "display") == "Hemoglobin [Mass/volume] in Blood"


def test_valueset_validate_code_membership(index: TerminologyIndex) -> None:
    lab = f"{BASE}/ValueSet/loinc-lab"
    assert (
        get(
            valueset_validate_code(
                index, params(url=lab, system=LOINC, code="4548-4", display="糖化血红蛋白")
            ),
            "result",
        )
        is True
    )
    assert get(valueset_validate_code(index, params(url=lab, system=LOINC, code="8867-4")), "result") is False
    townships = f"{BASE}/ValueSet/qingyuan-townships"
    coding = {"system": f"{BASE}/CodeSystem/gb-t-2260", "code": "441826-大麦山镇"}
    assert get(valueset_validate_code(index, params(url=townships, coding=coding)), "result") is True
    coding["code"] = "441826"
    assert get(valueset_validate_code(index, params(url=townships, coding=coding)), "result") is False


def test_valueset_validate_code_implicit_and_codeable_concept(index: TerminologyIndex) -> None:
    chapter_i = f"{ICD10}?fhir_vs=isa/I"
    concept = {"coding": [{"system": ICD10, "code": "A15.0"}], "text": "肺结核"}
    assert (
        get(valueset_validate_code(index, params(url=chapter_i, codeableConcept=concept)), "result") is True
    )
    concept["coding"][0]["code"] = "I10"
    assert (
        get(valueset_validate_code(index, params(url=chapter_i, codeableConcept=concept)), "result") is False
    )


def test_codesystem_validate_code(index: TerminologyIndex) -> None:
    assert get(codesystem_validate_code(index, params(url=SEX, code="1", display="男性")), "result") is True
    bad = codesystem_validate_code(index, params(url=SEX, code="3"))
    assert get(bad, "result") is False and "3" in get(bad, "message")
    assert get(codesystem_validate_code(index, params(url=UCUM, code="10*9/L")), "result") is True
    assert get(codesystem_validate_code(index, params(url=UCUM, code="mmHg")), "result") is False
    cn = codesystem_validate_code(index, params(url=ICD10_CN, code="U07.100"))
    assert get(cn, "result") is True and "U07.1" in get(cn, "message")


# --- CodeSystem/$subsumes (spec example: system + codeA + codeB -> outcome)


@pytest.mark.parametrize(
    ("code_a", "code_b", "outcome"),
    [
        ("A15-A19", "A15.0", "subsumes"),
        ("A15.0", "I", "subsumed-by"),
        ("E11", "E11", "equivalent"),
        ("E11", "I10", "not-subsumed"),
    ],
)
def test_subsumes_icd10(index: TerminologyIndex, code_a: str, code_b: str, outcome: str) -> None:
    result = subsumes(index, In(query=[("system", ICD10), ("codeA", code_a), ("codeB", code_b)]))
    assert result == {"resourceType": "Parameters", "parameter": [{"name": "outcome", "valueCode": outcome}]}


def test_subsumes_chinese_edition_codes(index: TerminologyIndex) -> None:
    assert (
        get(subsumes(index, params(system=ICD10_CN, codeA="E11.9", codeB="E11.900x001")), "outcome")
        == "subsumes"
    )
    assert get(subsumes(index, params(system=ICD10_CN, codeA="E11.900x001", codeB="E11.900")), "outcome") == (
        "subsumed-by"
    )
    assert get(subsumes(index, params(system=ICD10_CN, codeA="E11", codeB="I10.x00x002")), "outcome") == (
        "not-subsumed"
    )


def test_subsumes_rejects_mixed_systems(index: TerminologyIndex) -> None:
    with pytest.raises(InvalidInput):
        subsumes(
            index,
            params(codingA={"system": ICD10, "code": "E11"}, codingB={"system": LOINC, "code": "718-7"}),
        )


# --- ValueSet/$expand (spec example: GET [base]/ValueSet/23/$expand?filter=abdo)


def test_expand_filter_spec_example(index: TerminologyIndex) -> None:
    result = expand(index, In(query=[("url", f"{BASE}/ValueSet/gb-t-3304"), ("filter", "瑶")]))
    assert result["resourceType"] == "ValueSet" and result["url"] == f"{BASE}/ValueSet/gb-t-3304"
    assert result["expansion"]["total"] == 1
    assert result["expansion"]["contains"] == [
        {"system": ETHNICITY, "version": "1991", "code": "13", "display": "瑶族"}
    ]
    assert {"name": "filter", "valueString": "瑶"} in result["expansion"]["parameter"]


def test_expand_paging_and_display_language(index: TerminologyIndex) -> None:
    url = f"{BASE}/ValueSet/loinc-lab"
    full = expand(index, params(url=url))["expansion"]
    page = expand(index, params(url=url, offset=2, count=3, displayLanguage="zh"))["expansion"]
    assert page["total"] == full["total"] and page["offset"] == 2
    assert [c["code"] for c in page["contains"]] == [c["code"] for c in full["contains"][2:5]]
    assert page["contains"][0]["display"] == "白细胞计数"
    english = expand(index, params(url=url, count=1, displayLanguage="en"))["expansion"]["contains"][0]
    assert english["display"] == "CBC panel - Blood by Automated count"


def test_expand_icd10_chapter_and_filters(index: TerminologyIndex) -> None:
    chapter = expand(index, params(url=f"{ICD10}?fhir_vs=isa/I"))["expansion"]
    codes = {c["code"] for c in chapter["contains"]}
    assert {"I", "A00-A09", "A00", "A15.0", "B16.9"} <= codes and "I10" not in codes
    hepatitis = expand(index, params(url=f"{ICD10}?fhir_vs=isa/I", filter="hepatitis b", count=50))[
        "expansion"
    ]
    assert "B16.9" in {c["code"] for c in hepatitis["contains"]}
    class_a = expand(index, params(url=f"{BASE}/ValueSet/notifiable-disease-class-a"))["expansion"]
    assert {c["display"] for c in class_a["contains"]} == {"鼠疫", "霍乱"}


def test_expand_inline_valueset_with_include_designations(index: TerminologyIndex) -> None:
    inline = {
        "resourceType": "ValueSet",
        "status": "active",
        "compose": {"include": [{"system": LOINC, "concept": [{"code": "4548-4"}]}]},
    }
    result = expand(index, params(valueSet=inline, includeDesignations=True))
    entry = result["expansion"]["contains"][0]
    assert entry["code"] == "4548-4" and entry["designation"][0]["value"] == "糖化血红蛋白"


def test_expand_errors(index: TerminologyIndex) -> None:
    with pytest.raises(NotFound):
        expand(index, params(url=f"{BASE}/ValueSet/nope"))
    with pytest.raises(InvalidInput):
        expand(index, params(url=f"{BASE}/ValueSet/gb-t-3304", count=-1))
    with pytest.raises(TooCostly):
        expand(
            index,
            params(
                valueSet={
                    "resourceType": "ValueSet",
                    "status": "active",
                    "compose": {"include": [{"system": UCUM}]},
                }
            ),
        )


# --- ConceptMap/$translate (spec example: code + system + target -> result, match*)


def test_translate_spec_example_shape(index: TerminologyIndex) -> None:
    url = f"{BASE}/ConceptMap/local-QYRMYY"
    result = translate(index, params(url=url, system=f"{BASE}/CodeSystem/local/QYRMYY/L", code="HGB"))
    assert get(result, "result") is True
    assert get(result, "match") == {
        "equivalence": "equivalent",
        "concept": {"system": LOINC, "code": "718-7", "display": "Hemoglobin [Mass/volume] in Blood"},
        "source": url,
    }


def test_translate_icd10_to_notifiable_disease_and_who(index: TerminologyIndex) -> None:
    result = translate(index, params(system=ICD10_CN, code="U07.100"))
    concepts = {
        (m["concept"]["system"], m["concept"]["code"], m["equivalence"]) for m in all_of(result, "match")
    }
    assert (ICD10, "U07.1", "wider") in concepts
    only_nd = translate(index, params(system=ICD10, code="A15.0", targetsystem=NOTIFIABLE))
    assert [m["concept"]["display"] for m in all_of(only_nd, "match")] == ["肺结核"]


def test_translate_reverse_and_no_match(index: TerminologyIndex) -> None:
    url = f"{BASE}/ConceptMap/local-QYRMYY"
    back = translate(index, params(url=url, system=LOINC, code="718-7", reverse=True))
    assert get(back, "match")["concept"]["code"] == "HGB"
    none = translate(index, params(url=url, system=f"{BASE}/CodeSystem/local/QYRMYY/L", code="DX-CHEST"))
    assert get(none, "result") is False and "DX-CHEST" in get(none, "message")
    with pytest.raises(NotFound):
        translate(index, params(url=f"{BASE}/ConceptMap/none", system=LOINC, code="718-7"))


def test_search_modifier_resolvers(index: TerminologyIndex) -> None:
    from terminology import codes_below, valueset_codes

    below = codes_below(index, ICD10, "B15-B19")
    assert {"B15-B19", "B16", "B16.9"} <= below and "A15.0" not in below
    assert codes_below(index, ICD10, "ZZZ") == frozenset()
    assert (SEX, "1") in valueset_codes(index, f"{BASE}/ValueSet/gb-t-2261-1")
    with pytest.raises(NotFound):
        codes_below(index, "http://example.org/none", "x")
