"""Parsing of search parameters: modifiers, prefixes, escaping, chains, result parameters, errors."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ehr_store.errors import InvalidInput
from ehr_store.search import get_registry, parse_search
from ehr_store.search.query import (
    Chain,
    CodeSetValue,
    DateValue,
    Filter,
    Has,
    Include,
    NumberValue,
    QuantityValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    UriValue,
)

REG = get_registry()


def one(resource_type: str, name: str, value: str) -> Filter:
    query = parse_search(resource_type, [(name, value)], REG, strict=True)
    (criterion,) = query.criteria
    assert isinstance(criterion, Filter)
    return criterion


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("718-7", TokenValue(None, "718-7")),
        ("http://loinc.org|718-7", TokenValue("http://loinc.org", "718-7")),
        ("|718-7", TokenValue("", "718-7")),
        ("http://loinc.org|", TokenValue("http://loinc.org", None)),
        (r"urn:x|a\|b", TokenValue("urn:x", "a|b")),
    ],
)
def test_token_forms(raw: str, expected: TokenValue) -> None:
    assert one("Observation", "code", raw).values == (expected,)


def test_comma_is_or_and_escaped_comma_is_not() -> None:
    assert one("Observation", "code", "a,b").values == (TokenValue(None, "a"), TokenValue(None, "b"))
    assert one("Observation", "code", r"a\,b").values == (TokenValue(None, "a,b"),)
    assert one("Patient", "family", r"a\$b").values == (StringValue("a$b"),)


def test_repeated_parameter_is_and() -> None:
    query = parse_search("Observation", [("date", "ge2026-01-01"), ("date", "lt2026-02-01")], REG)
    assert len(query.criteria) == 2


@pytest.mark.parametrize("modifier", ["text", "not", "missing"])
def test_token_modifiers(modifier: str) -> None:
    f = one("Observation", f"code:{modifier}", "true" if modifier == "missing" else "Hemoglobin")
    assert f.modifier == modifier
    if modifier == "text":
        assert f.values == (TokenValue(None, None, "hemoglobin"),)


@pytest.mark.parametrize(
    ("modifier", "value", "expected"),
    [
        ("in", "http://x.org/ValueSet/a|2", CodeSetValue("in", None, "http://x.org/ValueSet/a|2")),
        ("not-in", "http://x.org/ValueSet/a", CodeSetValue("in", None, "http://x.org/ValueSet/a")),
        (
            "below",
            "http://hl7.org/fhir/sid/icd-10|A15",
            CodeSetValue("below", "http://hl7.org/fhir/sid/icd-10", "A15"),
        ),
        (
            "above",
            "http://hl7.org/fhir/sid/icd-10|A15.0",
            CodeSetValue("above", "http://hl7.org/fhir/sid/icd-10", "A15.0"),
        ),
    ],
)
def test_code_set_token_modifiers(modifier: str, value: str, expected: CodeSetValue) -> None:
    f = one("Condition", f"code:{modifier}", value)
    assert f.modifier == modifier and f.values == (expected,) and f.values[0].key is None


@pytest.mark.parametrize("value", ["A15", "|A15", "http://hl7.org/fhir/sid/icd-10|", "a|b|c"])
def test_below_on_a_token_needs_system_and_code(value: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_search("Condition", [("code:below", value)], REG)
    assert info.value.issues[0].expression == ("code:below",)


@pytest.mark.parametrize(("modifier", "value"), [(None, "zhang"), ("exact", "Zhang"), ("contains", "han")])
def test_string_modifiers(modifier: str | None, value: str) -> None:
    f = one(
        "Patient",
        f"name:{modifier}" if modifier else "name",
        "Zhang" if modifier == "exact" else value.upper(),
    )
    assert f.values == (StringValue(value),)


@pytest.mark.parametrize("modifier", ["below", "above"])
def test_uri_modifiers(modifier: str) -> None:
    f = one("ValueSet", f"url:{modifier}", "http://hie.example/fhir/ValueSet")
    assert f.modifier == modifier and f.values == (UriValue("http://hie.example/fhir/ValueSet"),)


@pytest.mark.parametrize("prefix", ["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"])
def test_prefixes_on_date_number_quantity(prefix: str) -> None:
    d = one("Observation", "date", f"{prefix}2026-03-01").values[0]
    assert isinstance(d, DateValue) and d.prefix == prefix
    assert d.start == datetime(2026, 2, 28, 16, tzinfo=UTC)
    q = one("Observation", "value-quantity", f"{prefix}5.4|http://unitsofmeasure.org|mmol/L").values[0]
    assert q == QuantityValue(
        prefix,
        Decimal("5.4"),
        Decimal("5.35"),
        Decimal("5.45"),
        "http://unitsofmeasure.org",
        "mmol/L",
    )
    n = one("ImagingStudy", "number-of-instances" if False else "_lastUpdated", f"{prefix}2026").values[0]
    assert isinstance(n, DateValue)


def test_number_parameter() -> None:
    values = parse_search("Group", [], REG)  # no number params on our types except via registry
    assert values.criteria == []
    f = one("Observation", "value-quantity", "100")
    assert isinstance(f.values[0], QuantityValue) and f.values[0].low == Decimal("99.5")


def test_number_value_type() -> None:
    from ehr_store.search.values_parse import parse_values

    param = REG.get("Observation", "value-quantity")
    assert param is not None
    assert isinstance(parse_values(param, None, "gt1e2", REG.tz, "x")[0], QuantityValue)
    assert NumberValue("eq", Decimal(1), Decimal("0.5"), Decimal("1.5")).high == Decimal("1.5")


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("subject", "Patient/p1", ReferenceValue("Patient", "p1")),
        ("subject", "p1", ReferenceValue(None, "p1")),
        ("subject:Patient", "p1", ReferenceValue("Patient", "p1")),
        (
            "subject",
            "http://other.example/fhir/Patient/p9",
            ReferenceValue("Patient", "p9", "http://other.example/fhir/Patient/p9"),
        ),
        (
            "subject:identifier",
            "urn:oid:2.16.156.10011.1.3|441802198507140025",
            TokenValue("urn:oid:2.16.156.10011.1.3", "441802198507140025"),
        ),
    ],
)
def test_reference_forms(name: str, raw: str, expected: object) -> None:
    assert one("Observation", name, raw).values == (expected,)


def test_chain_with_type_and_multi_level() -> None:
    query = parse_search("Observation", [("subject:Patient.organization.name", "清远")], REG, strict=True)
    (chain,) = query.criteria
    assert isinstance(chain, Chain) and chain.param.code == "subject"
    ((target, inner),) = chain.targets
    assert target == "Patient" and isinstance(inner, Chain) and inner.targets[0][0] == "Organization"


def test_chain_without_type_tries_every_target() -> None:
    (chain,) = parse_search("Observation", [("subject.name", "张")], REG).criteria
    assert isinstance(chain, Chain)
    assert {t for t, _ in chain.targets} == {"Patient", "Location"}  # Group has no `name`


def test_reverse_chain() -> None:
    (has,) = parse_search("Patient", [("_has:Observation:patient:code", "718-7")], REG, strict=True).criteria
    assert isinstance(has, Has) and has.source_type == "Observation" and has.ref_param.code == "patient"


def test_result_parameters() -> None:
    query = parse_search(
        "Observation",
        [
            ("_count", "5"),
            ("_offset", "10"),
            ("_sort", "-date,_id"),
            ("_total", "accurate"),
            ("_include", "Observation:subject:Patient"),
            ("_revinclude:iterate", "Provenance:target"),
            ("_summary", "data"),
            ("_elements", "code,subject"),
        ],
        REG,
        strict=True,
    )
    assert (query.count, query.offset, query.total, query.summary) == (5, 10, "accurate", "data")
    assert [(k.param.code, k.descending) for k in query.sort] == [("date", True), ("_id", False)]
    assert query.includes == [
        Include("Observation", "subject", "Patient", False, False),
        Include("Provenance", "target", None, True, True),
    ]
    assert query.elements == ("code", "subject")


def test_count_is_capped_and_summary_count() -> None:
    query = parse_search("Patient", [("_count", "100000"), ("_summary", "count")], REG, max_count=500)
    assert query.count == 500 and query.count_only


def test_system_search_types() -> None:
    query = parse_search(None, [("_type", "Patient,Observation"), ("_lastUpdated", "ge2026")], REG)
    assert query.types == ("Patient", "Observation") and len(query.criteria) == 1


def test_unknown_parameter_lenient_warns_strict_fails() -> None:
    query = parse_search("Patient", [("shoe-size", "42")], REG)
    assert query.criteria == [] and query.warnings[0].severity == "warning"
    assert query.warnings[0].expression == ("shoe-size",)
    with pytest.raises(InvalidInput) as err:
        parse_search("Patient", [("shoe-size", "42")], REG, strict=True)
    assert err.value.issues[0].expression == ("shoe-size",)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("birthdate", "notadate"),
        ("birthdate", "ge"),
        ("date", "2026-02-30"),
        ("value-quantity", "abc"),
        ("value-quantity", "1|2"),
        ("code", "a|b|c"),
        ("code", "|"),
        ("gender:missing", "maybe"),
        ("name:below", "x"),
        ("code:exact", "x"),
        ("_count", "-1"),
        ("_count", "ten"),
        ("_total", "some"),
        ("_sort", "shoe-size"),
        ("_include", "Observation:code"),
        ("_include", "Nothing:subject"),
        ("_has:Observation:code:status", "final"),
        ("_has:Observation", "x"),
        ("subject:Patient", "Group/g1"),
        ("subject:Medication.code", "x"),
        ("code.name", "x"),
    ],
)
def test_bad_values_are_invalid_input_naming_the_parameter(name: str, value: str) -> None:
    rtype = "Patient" if name in ("birthdate", "gender:missing", "name:below") else "Observation"
    with pytest.raises(InvalidInput) as err:
        parse_search(rtype, [(name, value)], REG)
    issue = err.value.issues[0]
    assert issue.code == "invalid"
    assert name in issue.expression or name.split(":")[0] in issue.expression or issue.expression


def test_unknown_resource_type() -> None:
    with pytest.raises(InvalidInput):
        parse_search("Spaceship", [], REG)


def test_registry_params_for_capability_statement() -> None:
    params = REG.params_for("Patient")
    assert {"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source", "identifier", "name"} <= set(
        params
    )
    assert params["identifier"].type == "token"
    assert params["identifier"].url == "http://hl7.org/fhir/SearchParameter/Patient-identifier"
    assert params["general-practitioner"].targets
