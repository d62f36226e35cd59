"""ehr_store.validation: R4B validation issues with FHIRPath-like expressions; id rules; required
bindings (code elements hold a code of their value set)."""

from __future__ import annotations

from typing import Any

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


@pytest.mark.parametrize("good", ["a", "A-1.b", "x" * 64, "123", ".a", "a..b", "1."])
def test_good_ids(good: str) -> None:
    check_id(good)


@pytest.mark.parametrize("bad", ["", "x" * 65, "a_b", "a b", "张", ".", "..", "..."])
def test_bad_ids(bad: str) -> None:
    with pytest.raises(InvalidInput):
        check_id(bad)


@pytest.mark.parametrize(
    ("resource", "expression"),
    [
        ({"resourceType": "Patient", "gender": "robot"}, "Patient.gender"),
        ({"resourceType": "Patient", "name": [{"family": "林"}, {"use": "weird", "family": "林"}]},
         "Patient.name[1].use"),
        ({"resourceType": "Observation", "status": "done", "code": {"text": "血糖"}}, "Observation.status"),
        ({"resourceType": "Encounter", "status": "open", "class": {"code": "AMB"}}, "Encounter.status"),
        ({"resourceType": "Patient", "telecom": [{"system": "wechat", "value": "x"}]},
         "Patient.telecom[0].system"),
    ],
)
def test_required_binding_codes_are_checked(resource: dict[str, Any], expression: str) -> None:
    with pytest.raises(InvalidInput) as err:
        validate_resource(resource)
    [issue] = err.value.issues
    assert issue.code == "code-invalid" and issue.expression == (expression,)
    assert "required value set" in issue.diagnostics


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Patient", "gender": "unknown", "name": [{"use": "official", "family": "林"}]},
        {"resourceType": "Observation", "status": "cancelled", "code": {"text": "x"}},  # beyond the "+" title
        {"resourceType": "DiagnosticReport", "status": "appended", "code": {"text": "x"}},
        {"resourceType": "Encounter", "status": "entered-in-error", "class": {"code": "IMP"}},
        {"resourceType": "Task", "status": "completed", "intent": "order"},
    ],
)
def test_every_code_of_a_required_value_set_passes(resource: dict[str, Any]) -> None:
    assert validate_resource(resource) == resource["resourceType"]


@pytest.mark.parametrize("levels", [60, 1000])
def test_deeply_nested_resource_refused_by_the_store_nothing_written(store: Any, levels: int) -> None:
    """A document built in code (not through jsonio) is refused before pydantic recurses."""
    ext: dict[str, Any] = {"url": "http://example.org/x", "valueString": "x"}
    for _ in range(levels):
        ext = {"url": "http://example.org/x", "extension": [ext]}
    doc = {"resourceType": "Patient", "extension": [ext]}
    with pytest.raises(InvalidInput, match="nested too deeply"):
        validate_resource(doc)
    with store.unit_of_work() as uow:
        with pytest.raises(InvalidInput, match="nested too deeply"):
            uow.resources.create(doc)
        with pytest.raises(InvalidInput, match="nested too deeply"):
            uow.resources.update("Patient", "deep", {**doc, "id": "deep"})
    with store.unit_of_work() as uow:
        assert uow.resources.search("Patient", []).matches == []


@pytest.mark.parametrize(
    ("resource", "expression"),
    [
        ({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
          "valueQuantity": {"value": 1, "comparator": "~"}}, "Observation.valueQuantity.comparator"),
        ({"resourceType": "SupplyRequest", "status": "bogus", "itemCodeableConcept": {"text": "x"},
          "quantity": {"value": 1}}, "SupplyRequest.status"),
        ({"resourceType": "DeviceUseStatement", "status": "bogus", "subject": {"reference": "Patient/p"},
          "device": {"reference": "Device/d"}}, "DeviceUseStatement.status"),
    ],
)
def test_bindings_the_models_list_short_or_not_at_all(resource: dict[str, Any], expression: str) -> None:
    """quantity-comparator (no code list in the models) and value sets whose list the models cut
    short with "+" (supplyrequest-status, device-statement-status, ...) are checked too."""
    with pytest.raises(InvalidInput) as info:
        validate_resource(resource)
    assert [(i.code, i.expression) for i in info.value.issues] == [("code-invalid", (expression,))]
    fixed = {**resource, "status": "active"} if resource["resourceType"] != "Observation" else {
        **resource, "valueQuantity": {"value": 1, "comparator": "<="}}
    assert validate_resource(fixed) == resource["resourceType"]
