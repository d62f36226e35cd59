"""The compiled FHIRPath subset selects what fhirpathpy selects, and covers our parameters."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fhirpathpy import evaluate
from fhirpathpy.models import models
from search_samples import encounter, observation, patient

from ehr_store.search import get_registry
from ehr_store.search.fhirpath import compile_expression

REG = get_registry()
EXCHANGE_TYPES = [
    "Patient", "Encounter", "Observation", "DiagnosticReport", "Condition", "AllergyIntolerance",
    "MedicationRequest", "MedicationStatement", "Immunization", "Procedure", "ServiceRequest",
    "DocumentReference", "ImagingStudy", "Organization", "Location", "Practitioner", "PractitionerRole",
    "Schedule", "Slot", "Appointment", "Consent", "Provenance", "AuditEvent", "Group", "CodeSystem",
    "ValueSet", "ConceptMap",
]  # fmt: skip


def _plain(resource: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(resource, default=float))
    return result


SAMPLES = [
    _plain(
        patient(
            "p1",
            family="张",
            given="三",
            resident_id="441802198507140025",
            phone="13800001234",
            meta={"tag": [{"system": "urn:t", "code": "x"}]},
        )
    ),
    _plain(
        observation(
            "o1",
            subject="Patient/p1",
            code="718-7",
            value="1.50",
            encounter="Encounter/e1",
            component=[{"code": {"coding": [{"code": "8480-6"}]}, "valueQuantity": {"value": 120}}],
        )
    ),
    _plain(encounter("e1", subject="Patient/p1", start="2026-03-01T09:00:00+08:00")),
]


@pytest.mark.parametrize("resource", SAMPLES, ids=lambda r: r["resourceType"])
def test_compiled_paths_select_what_fhirpathpy_selects(resource: dict[str, Any]) -> None:
    compared = 0
    for param in REG.params_for(resource["resourceType"]).values():
        if not param.indexed or not param.expression or "resolve()" in param.expression:
            continue
        if param.expression.startswith("Resource."):  # fhirpathpy does not match base-type prefixes
            continue
        assert param.path is not None
        compiled = [value for value, _ in param.path.evaluate(resource)]
        expected = evaluate(resource, param.expression, {}, models["r4"])
        assert compiled == expected, param.code
        compared += 1
    assert compared > 10


def test_where_resolve_filters_by_reference_type() -> None:
    path = compile_expression("Observation.subject.where(resolve() is Patient)", "Observation")
    assert path.evaluate({"subject": {"reference": "Patient/1"}}) == [
        ({"reference": "Patient/1"}, "Reference")
    ]
    assert path.evaluate({"subject": {"reference": "Group/1"}}) == []
    assert path.evaluate({"subject": {"reference": "http://x/fhir/Patient/1/_history/2"}})


def test_as_and_of_type_pick_the_choice_key() -> None:
    path = compile_expression("(Observation.value as Quantity)", "Observation")
    assert path.evaluate({"valueQuantity": {"value": 1}, "valueString": "x"}) == [({"value": 1}, "Quantity")]
    assert not path.uses_fhirpathpy


def test_unsupported_syntax_falls_back_to_fhirpathpy() -> None:
    path = compile_expression("Patient.name.where(use = 'official' or use = 'usual').family", "Patient")
    assert path.uses_fhirpathpy
    doc = {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": "王"}, {"use": "old", "family": "李"}],
    }
    assert path.evaluate(doc) == [("王", None)]


@pytest.mark.parametrize("resource_type", EXCHANGE_TYPES)
def test_every_parameter_of_the_exchange_types_compiles_without_fhirpathpy(resource_type: str) -> None:
    params = REG.params_for(resource_type)
    assert params, resource_type
    slow = [p.code for p in params.values() if p.path is not None and p.path.uses_fhirpathpy]
    assert slow == []
