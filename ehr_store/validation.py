"""Validation of incoming resources with `fhir.resources.R4B`, once per write.

The validated *input* JSON is what gets stored (not a model dump): the model only checks.
Pydantic errors become one `Issue` each with a FHIRPath-like `expression`
(`Observation.valueQuantity.value`, `Patient.name[0].given`).

May import: fhir.resources, pydantic, the standard library, `ehr_store.errors`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

from ehr_store.errors import InvalidInput, Issue, NotSupported

__all__ = ["FHIR_ID_RE", "check_id", "check_resource_type", "validate_resource"]

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
    """Raise InvalidInput unless `id` matches the FHIR id syntax (FHIR R4B datatypes §2.24.0.1)."""
    if not isinstance(id, str) or not FHIR_ID_RE.match(id):
        raise InvalidInput(f"{id!r} is not a valid FHIR id ([A-Za-z0-9-.]{{1,64}})", expression=(expression,))


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
    Raises: InvalidInput (not an object, no/wrong resourceType, bad id, validation errors
    with one issue per error), NotSupported (unknown resource type).
    """
    if not isinstance(resource, dict):
        raise InvalidInput("a FHIR resource must be a JSON object")
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        raise InvalidInput("resourceType is missing", expression=("resourceType",))
    if resource_type is not None and rtype != resource_type:
        raise InvalidInput(f"resourceType {rtype!r} does not match {resource_type!r}",
                           expression=("resourceType",))
    check_resource_type(rtype)
    if "id" in resource:
        check_id(resource["id"], expression=f"{rtype}.id")
    try:
        _model_class(rtype).model_validate(resource)
    except ValidationError as exc:
        raise InvalidInput(issues=_issues(rtype, exc)) from None
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{rtype}: {exc}", expression=(rtype,)) from None
    return rtype
