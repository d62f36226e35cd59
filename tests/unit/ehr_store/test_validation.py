"""ehr_store.validation: R4B validation issues with FHIRPath-like expressions; id rules."""

from __future__ import annotations

import pytest

from ehr_store import InvalidInput, NotSupported, check_id, check_resource_type, validate_resource


def test_valid_resource_returns_type() -> None:
    assert validate_resource({"resourceType": "Patient", "id": "a.b-1", "gender": "male"}) == "Patient"


def test_one_issue_per_error_with_expression() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_resource({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                           "valueQuantity": {"value": "abc"}, "component": [{"code": {"coding": "no"}}]})
    exprs = [i.expression[0] for i in info.value.issues]
    assert "Observation.valueQuantity.value" in exprs
    assert any(e.startswith("Observation.component[0].code.coding") for e in exprs)
    assert all(i.severity == "error" for i in info.value.issues)


def test_unknown_element_is_structure_issue() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_resource({"resourceType": "Patient", "shoeSize": 42})
    assert [(i.code, i.expression) for i in info.value.issues] == [("structure", ("Patient.shoeSize",))]


@pytest.mark.parametrize("name", ["Coding", "Resource", "DomainResource", "patient", "Nope", ""])
def test_non_resource_types_not_supported(name: str) -> None:
    with pytest.raises(NotSupported):
        check_resource_type(name)


def test_type_mismatch_and_missing_type() -> None:
    with pytest.raises(InvalidInput):
        validate_resource({"resourceType": "Patient"}, resource_type="Observation")
    with pytest.raises(InvalidInput):
        validate_resource({"id": "x"})


@pytest.mark.parametrize("good", ["a", "A-1.b", "x" * 64, "123"])
def test_good_ids(good: str) -> None:
    check_id(good)


@pytest.mark.parametrize("bad", ["", "x" * 65, "a_b", "a b", "张"])
def test_bad_ids(bad: str) -> None:
    with pytest.raises(InvalidInput):
        check_id(bad)
