"""Validation of incoming resources against `fhir.resources.R4B`, once per write.

Two validators that agree: the compiled one (`ehr_store.compiled_validation`: the models'
element structure in one pydantic-core schema plus one walk, 5-30 us a resource) decides
first; a document it refuses goes through the fhir.resources models (`validate_with_models`,
70-240 us) for the precise issues. The compiled validator is stricter in one way: null for a
required element (fhir.resources lets `"code": null` through), `resourceType` inside an element
that is not a resource, and fhir.resources' Python names as keys (`class_fhir` for `class`) are refused.
The validated *input* JSON is what gets stored (not a model dump): the validators only check.
Pydantic errors become one `Issue` each with a FHIRPath-like `expression`
(`Observation.valueQuantity.value`, `Patient.name[0].given`).

Required bindings: a `code` element bound `required` must hold one of its value set's codes
(fhir.resources keeps them as the field's `enum_values`): `Patient.gender` "robot" is refused
with issue code `code-invalid` at `Patient.gender`.

May import: fhir.resources (and its fhir_core base), pydantic, the standard library,
`ehr_store.errors`, `ehr_store.jsonio`, `ehr_store.compiled_validation`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from pydantic import ValidationError

from ehr_store import compiled_validation
from ehr_store.errors import InvalidInput, Issue, NotSupported
from ehr_store.jsonio import check_depth

__all__ = ["FHIR_ID_RE", "check_id", "check_resource_type", "validate_resource", "validate_with_models"]

FHIR_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
"""FHIR R4B datatypes §2.24.0.1 `id`: 1-64 characters of A-Z a-z 0-9 - ."""


@lru_cache(maxsize=256)
def _model_class(resource_type: str) -> Any:
    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError, AttributeError, ImportError):
        return None


def check_resource_type(resource_type: str) -> None:
    """Raise NotSupported unless `resource_type` names an R4B resource (FHIR R4B §3.1.0.1)."""
    cls = _model_class(resource_type) if resource_type[:1].isupper() else None
    abstract = resource_type in ("Resource", "DomainResource")
    if cls is None or abstract or not (isinstance(cls, type) and issubclass(cls, Resource)):
        raise NotSupported(f"resource type {resource_type!r} is not a FHIR R4B resource type",
                           issue_code="not-supported")


def check_id(id: str, *, expression: str = "id") -> None:
    """Raise InvalidInput unless `id` matches the FHIR id syntax (FHIR R4B datatypes §2.24.0.1)
    and is not made only of dots: `.` and `..` match the syntax but are path segments that
    clients normalise away (RFC 3986 §5.2.4), so `Patient/..` could never be read back."""
    if not isinstance(id, str) or not FHIR_ID_RE.match(id):
        raise InvalidInput(f"{id!r} is not a valid FHIR id ([A-Za-z0-9-.]{{1,64}})", expression=(expression,))
    if not id.strip("."):
        raise InvalidInput(
            f"{id!r} is not a usable id: an id made only of dots is a URL path segment (`.`, `..`)",
            expression=(expression,),
        )


def _expression(resource_type: str, loc: tuple[int | str, ...]) -> str:
    out = resource_type
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in part or " " in part:
            continue  # pydantic's internal validator names, not element names
        else:
            out += f".{part}"
    return out


def _issues(resource_type: str, error: ValidationError) -> list[Issue]:
    issues: list[Issue] = []
    for err in error.errors(include_url=False):
        expr = _expression(resource_type, tuple(err.get("loc", ())))
        msg = str(err.get("msg", "invalid"))
        code = "structure" if err.get("type") in ("extra_forbidden", "missing") else "value"
        if err.get("type") == "extra_forbidden":
            msg = "unknown element"
        issues.append(Issue("error", code, f"{expr}: {msg}", (expr,)))
    return issues


def validate_resource(resource: Any, *, resource_type: str | None = None) -> str:
    """Validate a resource JSON dict against its R4B model; returns its resourceType.

    `resource_type`, when given, must equal the document's resourceType.
    Raises: InvalidInput (not an object, nested more than `jsonio.MAX_DEPTH` levels, no/wrong
    resourceType, bad id, validation errors with one issue per error), NotSupported (unknown
    resource type).
    """
    if not isinstance(resource, dict):
        raise InvalidInput("a FHIR resource must be a JSON object")
    check_depth(resource)  # before pydantic, whose validators recurse once per level
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        raise InvalidInput("resourceType is missing", expression=("resourceType",))
    if resource_type is not None and rtype != resource_type:
        raise InvalidInput(f"resourceType {rtype!r} does not match {resource_type!r}",
                           expression=("resourceType",))
    check_resource_type(rtype)
    if "id" in resource:
        check_id(resource["id"], expression=f"{rtype}.id")
    fast = compiled_validation.check(resource, rtype, _code_elements)
    if fast is True:
        return rtype
    # refused by the compiled validator (or a type it cannot compile): fhir.resources says why
    try:
        validate_with_models(resource, rtype)
    except InvalidInput as exc:
        if fast is False and any(m in i.diagnostics for i in exc.issues for m in _MODELS_CONFUSED):
            raise InvalidInput(issues=_compiled_issues(resource, rtype)) from None
        raise
    if fast is False:  # stricter than fhir.resources: null for a required element, a stray key
        raise InvalidInput(issues=_compiled_issues(resource, rtype))
    return rtype


_MODELS_CONFUSED = (
    "Invalid JSON", "KeyError", "One of field value is required", "Datetimes provided to dates"
)
"""fhir.resources messages that do not say what is wrong (a string element parsed as JSON text,
a crash on an unknown nested resourceType): the compiled validator's reason is given instead."""


def validate_with_models(resource: dict[str, Any], rtype: str) -> None:
    """The reference validation: `resource` through its fhir.resources R4B model, then the
    required bindings (~70-240 us a resource; `validate_resource` asks it only for documents
    the compiled validator refuses, for its precise issues).
    Raises: InvalidInput with one issue per error."""
    try:
        model = _model_class(rtype).model_validate(resource)
    except ValidationError as exc:
        raise InvalidInput(issues=_issues(rtype, exc)) from None
    except (ValueError, TypeError, AttributeError, KeyError) as exc:  # fhir_core crashes on some input
        raise InvalidInput(f"{rtype}: {type(exc).__name__}: {exc}", expression=(rtype,)) from None
    issues: list[Issue] = []
    _check_required_codes(model, rtype, issues)
    if issues:
        raise InvalidInput(issues=issues)


def _compiled_issues(resource: dict[str, Any], rtype: str) -> list[Issue]:
    """The compiled validator's reasons for refusing what fhir.resources let through."""
    found = compiled_validation.explain(resource, rtype, _code_elements)
    if not found:
        return [Issue("error", "structure", f"{rtype}: not a valid {rtype} (FHIR R4B)", (rtype,))]
    return [
        Issue("error", "structure" if message in ("unknown element", "required") else "value",
              f"{where}: {message}", (where,))
        for where, message in found
    ]


_OBSERVATION_STATUS = ("registered", "preliminary", "final", "amended", "corrected", "cancelled",
                       "entered-in-error", "unknown")
_ENCOUNTER_STATUS = ("planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled",
                     "entered-in-error", "unknown")
_COMPLETE_CODES: dict[tuple[str, str], tuple[str, ...]] = {
    # fhir.resources takes `enum_values` from the element's short title; where that ends in
    # "+" the list is cut short: the whole R4B value set, for the elements that have one here
    ("Observation", "status"): _OBSERVATION_STATUS,  # observation-status
    ("DetectedIssue", "status"): _OBSERVATION_STATUS,
    ("RiskAssessment", "status"): _OBSERVATION_STATUS,
    ("DiagnosticReport", "status"): ("registered", "partial", "preliminary", "final", "amended", "corrected",
                                     "appended", "cancelled", "entered-in-error", "unknown"),
    ("Encounter", "status"): _ENCOUNTER_STATUS,  # encounter-status
    ("EncounterStatusHistory", "status"): _ENCOUNTER_STATUS,
    ("Task", "status"): ("draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
                         "in-progress", "on-hold", "failed", "completed", "entered-in-error"),
    ("DeviceUdiCarrier", "entryType"): ("barcode", "rfid", "manual", "card", "self-reported", "unknown"),
    ("DeviceUseStatement", "status"): ("active", "completed", "entered-in-error", "intended", "stopped",
                                       "on-hold"),
    ("QuestionnaireItem", "type"): ("group", "display", "boolean", "decimal", "integer", "date", "dateTime",
                                    "time", "string", "text", "url", "choice", "open-choice", "attachment",
                                    "reference", "quantity"),  # item-type without the abstract "question"
    ("StructureMapGroupRuleTarget", "transform"): ("create", "copy", "truncate", "escape", "cast", "append",
                                                   "translate", "reference", "dateOp", "uuid", "pointer",
                                                   "evaluate", "cc", "c", "qty", "id", "cp"),
    ("SupplyRequest", "status"): ("draft", "active", "suspended", "cancelled", "completed",
                                  "entered-in-error", "unknown"),
}
_COMPARATOR = ("<", "<=", ">=", ">")  # quantity-comparator (required)
_UNLISTED_CODES: dict[tuple[str, str], tuple[str, ...]] = {
    # required bindings fhir.resources keeps no codes for (its title is not a code list)
    (quantity, "comparator"): _COMPARATOR for quantity in ("Quantity", "Age", "Count", "Distance", "Duration")
}


@lru_cache(maxsize=1024)
def _code_elements(cls: Any) -> dict[str, tuple[str, frozenset[str]]]:
    """attribute → (JSON name, allowed codes) for `cls`'s `code` elements with a required
    binding (fhir.resources records the value set's codes as `enum_values`; a list cut short
    with "+" is completed from `_COMPLETE_CODES` or not checked)."""
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for name, field in getattr(cls, "model_fields", {}).items():
        extra = field.json_schema_extra
        values = extra.get("enum_values") if isinstance(extra, dict) else None
        if not isinstance(values, list) or not values:
            values = list(_UNLISTED_CODES.get((cls.__name__, name), ()))
        if not values:
            continue
        if "+" in values:
            values = list(_COMPLETE_CODES.get((cls.__name__, name), ()))
        if values:
            out[name] = (field.alias or name, frozenset(str(v) for v in values))
    return out


def _check_required_codes(model: Any, path: str, issues: list[Issue]) -> None:
    """Every `code` element bound `required` holds a code of its value set (FHIR R4B
    terminologies §4.1.5.1: a required binding "SHALL" be one of the value set's codes,
    e.g. Patient.gender male | female | other | unknown). Appends one issue per bad code.
    (The element path is only spelled out for a bad code: the walk costs ~15 us a resource.)"""
    cls: Any = type(model)
    codes = _code_elements(cls)
    for name, value in model.__dict__.items():
        if value is None or (type(value) is str and name not in codes):
            continue
        bound = codes.get(name)
        many = isinstance(value, list)
        for i, item in enumerate(value if many else (value,)):
            if bound is not None:
                if item is not None and str(item) not in bound[1]:
                    where = f"{path}.{bound[0]}" + (f"[{i}]" if many else "")
                    allowed = " | ".join(sorted(bound[1]))
                    text = f"{where}: {str(item)!r} is not in the required value set ({allowed})"
                    issues.append(Issue("error", "code-invalid", text, (where,)))
            elif isinstance(item, FHIRAbstractModel):
                field = cls.model_fields.get(name)
                json_name = (field.alias or name) if field is not None else name
                _check_required_codes(item, f"{path}.{json_name}" + (f"[{i}]" if many else ""), issues)
