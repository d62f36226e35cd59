"""ehr_store.compiled_validation agrees with the fhir.resources models (the reference): every
document it accepts the models accept; what it refuses they refuse too, except the documented
stricter cases (null for a required element, `resourceType` in a plain element, Python names).

The differential test mutates realistic resources (unknown elements, wrong JSON types, bad
primitive formats, nulls in arrays, second choice types, removed required elements, `_name`
extensions, codes outside required bindings) with a fixed seed and compares both answers."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

import pytest

from ehr_store import InvalidInput, validate_resource, validate_with_models
from ehr_store.compiled_validation import check, compiled
from ehr_store.validation import _code_elements

Json = dict[str, Any]

PATIENT: Json = {
    "resourceType": "Patient", "id": "QYRMYY-QY0000001",
    "meta": {"source": "urn:qyhie:facility:QYRMYY", "tag": [{"system": "urn:qyhie:tag", "code": "source"}]},
    "identifier": [{"system": "urn:oid:2.16.156.10011.1.3", "value": "44180219800101002X",
                    "type": {"coding": [{"system": "urn:qyhie:cs", "code": "NNCHN"}]}}],
    "active": True,
    "name": [{"text": "陈小明", "family": "陈", "given": ["小明"],
              "extension": [{"url": "urn:qyhie:pinyin", "valueString": "chen xiaoming"}]}],
    "telecom": [{"system": "phone", "value": "13800000001", "use": "mobile"}],
    "gender": "male", "birthDate": "1980-01-01",
    "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                  "valueDateTime": "1980-01-01T08:30:00+08:00"}]},
    "deceasedBoolean": False,
    "address": [{"line": ["清城区凤城街道1号"], "city": "清远市", "district": "清城区",
                 "extension": [{"url": "urn:qyhie:county", "valueCode": "441802"}]}],
    "link": [{"other": {"reference": "Patient/golden-1"}, "type": "refer"}],
}
OBSERVATION: Json = {
    "resourceType": "Observation", "id": "o1", "status": "final",
    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                              "code": "laboratory"}]}],
    "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}], "text": "葡萄糖"},
    "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-09-01T08:00:00+08:00",
    "valueQuantity": {"value": 5.6, "comparator": "<", "unit": "mmol/L", "system": "http://unitsofmeasure.org",
                      "code": "mmol/L"},
    "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                    "code": "N"}]}],
    "referenceRange": [{"low": {"value": 3.9}, "high": {"value": 6.1}, "text": "3.9-6.1"}],
    "component": [{"code": {"text": "x"}, "valueString": "y"}],
    "note": [{"text": "空腹"}],
}
ENCOUNTER: Json = {
    "resourceType": "Encounter", "id": "e1", "status": "finished",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
    "subject": {"reference": "Patient/p1"}, "period": {"start": "2026-09-01T08:00:00+08:00"},
    "participant": [{"individual": {"reference": "Practitioner/d1", "display": "卢健兴"}}],
    "diagnosis": [{"condition": {"reference": "Condition/c1"}, "rank": 1}],
    "location": [{"location": {"display": "儿科"}}],
}
BUNDLE: Json = {
    "resourceType": "Bundle", "type": "transaction",
    "entry": [
        {"fullUrl": "urn:uuid:1", "resource": copy.deepcopy(PATIENT),
         "request": {"method": "PUT", "url": "Patient/p"}},
        {"resource": {"resourceType": "Immunization", "status": "completed",
                      "patient": {"reference": "urn:uuid:1"}, "vaccineCode": {"text": "流感疫苗"},
                      "occurrenceDateTime": "2026-09-02",
                      "doseQuantity": {"value": 0.5, "unit": "mL"}},
         "request": {"method": "POST", "url": "Immunization"}},
    ],
}
CONTAINED: Json = {
    "resourceType": "DiagnosticReport", "id": "r1", "status": "final", "code": {"text": "血常规"},
    "contained": [{"resourceType": "Observation", "id": "a", "status": "final", "code": {"text": "WBC"},
                   "valueQuantity": {"value": 9.9}}],
    "result": [{"reference": "#a"}], "issued": "2026-09-01T08:00:00.000+08:00",
}
AUDIT: Json = {
    "resourceType": "AuditEvent",
    "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110100"},
    "action": "C", "recorded": "2026-11-29T14:00:00.123Z", "outcome": "0",
    "agent": [{"requestor": True, "who": {"display": "mllp"}}],
    "source": {"observer": {"display": "hie"}},
    "entity": [{"what": {"reference": "Patient/p1"}}],
}
CORPUS = [PATIENT, OBSERVATION, ENCOUNTER, BUNDLE, CONTAINED, AUDIT]

ODD_VALUES: list[Any] = [
    1, 1.5, "x", "", " x", True, None, {}, [], {"a": 1}, ["x"], [None], "2024-13-45", "2024-02-30", "12:99",
    "-0", "1e5", "a b", "\t", "male", "final", "2024", "2024-01-01T10:00", "2024-01-01T25:00:00+08:00",
    10**20, -1, "0.10", {"extension": []}, {"id": "a"}, [{"url": "x"}],
]
ODD_KEYS = ["foo", "valueString", "valueBoolean", "_status", "_family", "extension", "id", "class_fhir",
            "fhir_comments", "deceasedDateTime", "_given", "effectivePeriod", "resourceType", "url"]


def _nodes(x: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, x
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _nodes(v, (*path, i))


def _mutate(doc: Json, rng: random.Random) -> Json:
    out = copy.deepcopy(doc)
    path, node = rng.choice([(p, n) for p, n in _nodes(out) if p and p != ("resourceType",)])
    parent: Any = out
    for part in path[:-1]:
        parent = parent[part]
    key = path[-1]
    kind = rng.randrange(7)
    if kind == 0 and isinstance(node, dict):
        node[rng.choice(ODD_KEYS)] = rng.choice(ODD_VALUES)
    elif kind == 1:
        parent[key] = rng.choice(ODD_VALUES)
    elif kind == 2 and isinstance(parent, dict):
        del parent[key]
    elif kind == 3 and isinstance(node, list):
        node.insert(rng.randrange(len(node) + 1), rng.choice([None, {}, "x", 1]))
    elif kind == 4 and isinstance(parent, dict) and isinstance(key, str):
        parent["_" + key] = rng.choice([{}, {"extension": []}, {"id": "a"}, None, [None, {}],
                                        {"extension": [{"url": "http://x", "valueString": "y"}]}])
    elif kind == 5 and isinstance(parent, dict) and isinstance(key, str):
        parent[key + "X"] = node
    else:
        parent[key] = copy.deepcopy(rng.choice([node, [node], {"value": node}]))
    return out


def _models_accept(doc: Json) -> bool:
    try:
        validate_with_models(doc, doc["resourceType"])
    except InvalidInput:
        return False
    return True


def test_corpus_is_valid_for_both() -> None:
    for doc in CORPUS:
        assert check(doc, doc["resourceType"], _code_elements) is True, doc["resourceType"]
        assert _models_accept(doc), doc["resourceType"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_never_accepts_what_the_models_refuse(seed: int) -> None:
    rng = random.Random(seed)
    outcomes: dict[tuple[bool, bool], int] = {}
    for _ in range(1500):
        doc = _mutate(rng.choice(CORPUS), rng)
        if rng.random() < 0.3:
            doc = _mutate(doc, rng)
        fast = check(doc, doc["resourceType"], _code_elements)
        assert fast is not None
        models = _models_accept(doc)
        outcomes[(fast, models)] = outcomes.get((fast, models), 0) + 1
        assert not (fast and not models), doc  # accepted something the models refuse
    # both answers occur, so the mutations reach both valid and invalid documents
    assert outcomes.get((True, True), 0) > 100 and outcomes.get((False, False), 0) > 500


@pytest.mark.parametrize(
    ("doc", "expression"),
    [
        ({**OBSERVATION, "valueString": "again"}, "Observation"),  # two choice types
        ({k: v for k, v in ENCOUNTER.items() if k != "status"}, "Encounter.status"),  # required primitive
        ({**PATIENT, "gender": "robot"}, "Patient.gender"),  # required binding
        ({**PATIENT, "name": [None]}, "Patient.name"),  # null in a complex array
        ({**PATIENT, "birthDate": "1980-13-01"}, "Patient.birthDate"),
        ({**PATIENT, "_birthDate": {}}, "Patient._birthDate"),
        ({**CONTAINED, "contained": [{"resourceType": "Observation", "status": "final"}]},
         "DiagnosticReport"),
    ],
)
def test_refused_with_the_models_issues(doc: Json, expression: str) -> None:
    assert check(doc, doc["resourceType"], _code_elements) is False
    with pytest.raises(InvalidInput) as info:
        validate_resource(doc)
    assert any(i.expression and i.expression[0].startswith(expression) for i in info.value.issues)


@pytest.mark.parametrize(
    ("doc", "expression"),
    [
        ({**OBSERVATION, "code": None}, "Observation.code"),
        ({**{k: v for k, v in ENCOUNTER.items() if k != "class"}, "class_fhir": ENCOUNTER["class"]},
         "Encounter.class_fhir"),
        ({**PATIENT, "meta": {"resourceType": None}}, "Patient.meta.resourceType"),
        # FHIR JSON's own types (R4B JSON §2.6.2): the models coerce these and the raw input is stored
        ({**PATIENT, "active": "true"}, "Patient.active"),
        ({**PATIENT, "active": 1}, "Patient.active"),
        ({**PATIENT, "birthDate": None}, "Patient.birthDate"),
        ({**PATIENT, "_birthDate": None}, "Patient._birthDate"),
        ({**OBSERVATION, "valueQuantity": {"value": "5"}}, "Observation.valueQuantity.value"),
        ({**{k: v for k, v in OBSERVATION.items() if k != "valueQuantity"}, "valueInteger": 1.0},
         "Observation.valueInteger"),
        ({**PATIENT, "name": [{"family": "陈", "given": ["a", None]}]}, "Patient.name[0].given"),
        ({**PATIENT, "name": [{"given": ["a"], "_given": [None, {"id": "x"}]}]}, "Patient.name[0]._given"),
        ({**PATIENT, "telecom": []}, "Patient.telecom"),
        ({**PATIENT, "identifier": [{"system": "urn:a b", "value": "1"}]}, "Patient.identifier[0].system"),
        ({**PATIENT, "name": [{"family": "a\u0000b"}]}, "Patient.name[0].family"),
        # invariants: ele-1 (a primitive's `_x` with only an id and no value), ext-1, dom-2, dom-4
        ({**{k: v for k, v in PATIENT.items() if k != "active"}, "_active": {"id": "a1"}}, "Patient._active"),
        ({**PATIENT, "name": [{"given": ["a", None], "_given": [None, {"id": "z"}]}]},
         "Patient.name[0]._given"),
        ({**PATIENT, "extension": [{"url": "urn:x", "valueString": "a",
                                    "extension": [{"url": "urn:y", "valueString": "b"}]}]},
         "Patient.extension[0]"),
        ({**PATIENT, "extension": [{"url": "urn:x"}]}, "Patient.extension[0]"),
        ({**CONTAINED, "contained": [{**CONTAINED["contained"][0], "contained": [
            {"resourceType": "Patient", "id": "b"}]}]}, "DiagnosticReport.contained[0]"),
        ({**CONTAINED, "contained": [{**CONTAINED["contained"][0], "meta": {"versionId": "1"}}]},
         "DiagnosticReport.contained[0]"),
    ],
)
def test_stricter_than_the_models(doc: Json, expression: str) -> None:
    """Documented differences: the models let these through, the store does not."""
    assert _models_accept(doc)
    with pytest.raises(InvalidInput) as info:
        validate_resource(doc)
    assert expression in [i.expression[0] for i in info.value.issues if i.expression]


def test_primitive_array_nulls_line_up_with_extensions() -> None:
    """A null in a primitive array is a placeholder for an extension at the same position."""
    doc = {**PATIENT, "name": [{"family": "陈", "given": ["小", None],
                                "_given": [None, {"extension": [{"url": "urn:x", "valueString": "明"}]}]}]}
    assert check(doc, "Patient", _code_elements) is True
    assert check({**PATIENT, "name": [{}]}, "Patient", _code_elements) is False  # empty object


def test_required_primitive_may_be_an_extension() -> None:
    doc = {**{k: v for k, v in ENCOUNTER.items() if k != "status"},
           "_status": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                      "valueCode": "unknown"}]}}
    assert check(doc, "Encounter", _code_elements) is True
    assert _models_accept(doc)


def test_unknown_type_has_no_compiled_validator() -> None:
    assert compiled("Nope") is None and compiled("Coding") is None
    assert check({"resourceType": "Nope"}, "Nope", _code_elements) is None


@pytest.mark.parametrize(
    ("doc", "expression", "words"),
    [
        ({"resourceType": "Patient", "maritalStatus": "M"}, "Patient.maritalStatus", "JSON object"),
        ({"resourceType": "Patient", "_birthDate": "x"}, "Patient._birthDate", "JSON object"),
        ({"resourceType": "Patient", "contained": [{"resourceType": "Foo"}]}, "Patient.contained[0]",
         "'Foo' is not an R4B resource type"),
        ({"resourceType": "Patient", "_birthDate": {"foo": 1}}, "Patient._birthDate.foo", "unknown element"),
        ({"resourceType": "Patient", "birthDate": 19800101}, "Patient.birthDate", "JSON string"),
        ({**OBSERVATION, "valueQuantity": {"value": "1.0"}}, "Observation.valueQuantity.value",
         "must be a JSON number"),  # one issue, not one per branch of the number check
    ],
)
def test_where_the_models_confuse_the_compiled_reason_is_given(
    doc: Json, expression: str, words: str
) -> None:
    """fhir.resources answers these with "Invalid JSON", a KeyError or a date-coercion message."""
    with pytest.raises(InvalidInput) as info:
        validate_resource(doc)
    assert [(i.expression, words in i.diagnostics) for i in info.value.issues] == [((expression,), True)]
