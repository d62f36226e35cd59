"""The one domain-error kind -> HTTP status table and the four exception handlers.

Every error body is an OperationOutcome (FHIR R4B §2.40) served as `application/fhir+json`.
HTTP-only refinements of the domain kinds (405, 406, 413, 415) live here as subclasses so
the lookup along the MRO stays the single source of truth.

May import: fastapi/starlette, orjson, `ehr_store` (error kinds).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ehr_store import (
    Conflict,
    DomainError,
    Forbidden,
    Gone,
    InvalidInput,
    Issue,
    NotFound,
    NotSupported,
    PreconditionFailed,
    TooCostly,
    Unauthenticated,
    Unavailable,
    Unprocessable,
)

log = logging.getLogger("hie_server.errors")

FHIR_JSON = "application/fhir+json"


@dataclass
class MethodNotAllowed(NotSupported):
    """The interaction is not allowed on this resource (HTTP 405)."""


@dataclass
class NotAcceptable(NotSupported):
    """The requested response format is not supported (HTTP 406)."""


@dataclass
class UnsupportedMediaType(NotSupported):
    """The request body's media type is not supported (HTTP 415)."""


@dataclass
class PayloadTooLarge(TooCostly):
    """The request body exceeds `http.max_body_bytes` (HTTP 413)."""


STATUS_BY_KIND: Mapping[type[DomainError], int] = {
    InvalidInput: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    NotSupported: 400,
    MethodNotAllowed: 405,
    NotAcceptable: 406,
    UnsupportedMediaType: 415,
    Conflict: 409,
    Gone: 410,
    PreconditionFailed: 412,
    TooCostly: 400,
    PayloadTooLarge: 413,
    Unprocessable: 422,
    Unavailable: 503,
    DomainError: 500,
}

_CODE_BY_HTTP_STATUS = {404: "not-found", 405: "not-supported", 401: "login", 403: "forbidden"}


def status_for(error: DomainError) -> int:
    """HTTP status of a domain error: the first class along its MRO found in STATUS_BY_KIND."""
    for kind in type(error).__mro__:
        status = STATUS_BY_KIND.get(kind)
        if status is not None:
            return status
    return 500


def outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """An OperationOutcome JSON object with the given issues."""
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}


def outcome_response(
    status: int, issues: Iterable[Issue], headers: Mapping[str, str] | None = None
) -> Response:
    """An OperationOutcome response with `application/fhir+json`."""
    body = orjson.dumps(outcome(issues))
    return Response(body, status_code=status, media_type=FHIR_JSON, headers=dict(headers or {}))


def request_id(request: Request) -> str:
    """The request id set by the request-id middleware ('-' when none)."""
    return str(getattr(request.state, "request_id", "-"))


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    status = status_for(exc)
    if status >= 500:
        log.warning("request %s failed: %s", request_id(request), type(exc).__name__)
    deleted_version = getattr(exc, "version_id", None) if isinstance(exc, Gone) else None
    headers = {"ETag": f'W/"{deleted_version}"'} if deleted_version else None
    return outcome_response(status, exc.issues, headers)


def _validation_issue(error: Mapping[str, Any]) -> Issue:
    loc = [str(p) for p in error.get("loc", ())]
    where = ".".join(loc)
    return Issue("error", "invalid", f"{where}: {error.get('msg', 'invalid')}", (where,) if where else ())


async def _request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return outcome_response(400, [_validation_issue(e) for e in exc.errors()])


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODE_BY_HTTP_STATUS.get(exc.status_code, "processing")
    detail = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404:
        detail = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        detail = f"method {request.method} not allowed on {request.url.path}"
    return outcome_response(exc.status_code, [Issue("error", code, detail)], exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    rid = request_id(request)
    log.error("request %s: unhandled %s", rid, type(exc).__name__, exc_info=exc)
    issue = Issue("fatal", "exception", f"internal server error (request id {rid})")
    return outcome_response(500, [issue], {"X-Request-Id": rid})


def install_error_handlers(app: FastAPI) -> None:
    """Register the four handlers: domain error, request validation, HTTPException, anything else."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(Exception, _unexpected)
