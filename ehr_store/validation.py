"""Validation of incoming resources with `fhir.resources.R4B`, once per write.

The validated *input* JSON is what gets stored (not a model dump): the model only checks.
Pydantic errors become one `Issue` each with a FHIRPath-like `expression`
(`Observation.valueQuantity.value`, `Patient.name[0].given`).

`ValidationPool` runs the same validation in worker processes (pure CPU work, so a second
core can check the next documents while the writer works); the worker answers with the
content digest of each document that validated, and a repository given those digests
(`accept_validated`) skips validating exactly those documents a second time.

May import: fhir.resources, pydantic, orjson, the standard library, `ehr_store.errors`.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import re
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from decimal import Decimal
from functools import lru_cache
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

from ehr_store.errors import InvalidInput, Issue, NotSupported

__all__ = [
    "FHIR_ID_RE",
    "ValidationPool",
    "check_id",
    "check_resource_type",
    "content_digest",
    "validate_resource",
]

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


def _digest_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def content_digest(resource: Any) -> bytes:
    """16-byte digest of a resource's exact content (key-sorted JSON, meta included): equal
    digests mean equal documents. Raises: TypeError (not JSON-serialisable)."""
    body = orjson.dumps(resource, default=_digest_default, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(body, digest_size=16).digest()


def validated_digests(resources: Sequence[Any]) -> list[bytes | None]:
    """`validate_resource` for each document; its `content_digest` when it is valid, else
    None (the write then validates again and raises the precise error). Runs in workers."""
    out: list[bytes | None] = []
    for resource in resources:
        try:
            validate_resource(resource)
            out.append(content_digest(resource))
        except Exception:
            out.append(None)
    return out


def _warm() -> None:
    _model_class("Patient")


class ValidationPool:
    """`validated_digests` in `workers` worker processes (spawned, so no locks or
    connections are inherited). Futures resolve in submission order per worker."""

    def __init__(self, workers: int = 1) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_warm)

    def submit(self, resources: Sequence[Any]) -> Future[list[bytes | None]]:
        """Validate `resources` in a worker; the future's result is `validated_digests`."""
        return self._pool.submit(validated_digests, list(resources))

    def close(self) -> None:
        """Stop the workers (pending validations finish first)."""
        self._pool.shutdown(wait=True)
