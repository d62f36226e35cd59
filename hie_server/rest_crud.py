"""FHIR REST instance and type interactions: read, vread, create, update, patch, delete
and their conditional forms (FHIR R4B http §3.1.0.2–§3.1.0.8).

Reads answer the stored bytes unchanged with `ETag`/`Last-Modified`; writes honour
`If-Match`, `If-None-Exist` and `Prefer: return=minimal|representation|OperationOutcome`.

May import: fastapi/starlette, `ehr_store`, `hie_server.*`.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ehr_store import (
    InvalidInput,
    Issue,
    StoredResource,
    UnitOfWork,
    json_loads,
    json_loads_resource,
    parse_criteria,
)
from hie_server import interactions
from hie_server.bundles import parse_subset, subset_resource
from hie_server.context import (
    FhirContext,
    check_body_type,
    check_id,
    check_type,
    fhir_context,
    parse_version,
    version_headers,
)
from hie_server.errors import outcome
from hie_server.formats import JSON_PATCH, check_body_media_type, fhir_response, read_body
from hie_server.interactions import Outcome

router = APIRouter()
Ctx = Depends(fhir_context)


def prefer(request: Request) -> dict[str, str]:
    """The `Prefer` header as {name: value} (`return`, `handling`; RFC 7240)."""
    result: dict[str, str] = {}
    for part in request.headers.get("prefer", "").replace(";", ",").split(","):
        name, _, value = part.strip().partition("=")
        if name:
            result[name.strip().lower()] = value.strip().strip('"')
    return result


def if_match(request: Request) -> int | None:
    """The version named by `If-Match` (None when absent). Raises: InvalidInput."""
    value = request.headers.get("if-match")
    return parse_version(value, "If-Match") if value else None


async def resource_body(request: Request, ctx: FhirContext) -> dict[str, Any]:
    """Read and parse a resource body. Raises: UnsupportedMediaType, PayloadTooLarge, InvalidInput."""
    check_body_media_type(request)
    data = await read_body(request, ctx.settings.http.max_body_bytes)
    if not data.strip():
        raise InvalidInput("the request has no body; a FHIR resource is expected")
    return json_loads_resource(data)


def write_response(request: Request, ctx: FhirContext, result: Outcome) -> Response:
    """The response to a write, shaped by `Prefer: return=` (FHIR R4B http §3.1.0.1.9)."""
    stored = result.stored
    if stored is None:
        return Response(status_code=204)
    base = ctx.base_url(request) if result.status == 201 else None
    headers = version_headers(stored, base)
    if result.status == 204:
        return Response(status_code=204, headers={"ETag": stored.etag})
    wanted = prefer(request).get("return", "representation")
    if wanted == "minimal":
        return Response(status_code=result.status, headers=headers)
    if wanted == "OperationOutcome":
        text = (
            f"{stored.reference} version {stored.version_id}: {'created' if result.status == 201 else 'ok'}"
        )
        return fhir_response(
            request, outcome([Issue("information", "informational", text)]), result.status, headers
        )
    return fhir_response(request, stored.content, result.status, headers)


def _not_modified(request: Request, stored: StoredResource) -> bool:
    """`If-None-Match` / `If-Modified-Since` say the client's copy is current (RFC 9110 §13.1)."""
    none_match = request.headers.get("if-none-match")
    if none_match:
        return any(
            tag.strip() in (stored.etag, f'"{stored.version_id}"', "*") for tag in none_match.split(",")
        )
    since = request.headers.get("if-modified-since")
    if since:
        try:
            moment: datetime = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        return stored.last_updated.replace(microsecond=0) <= moment
    return False


def read_response(request: Request, stored: StoredResource) -> Response:
    """200 with the stored bytes (subsetted by `_summary`/`_elements` if asked), or 304."""
    headers = version_headers(stored)
    if _not_modified(request, stored):
        return Response(status_code=304, headers=headers)
    query = request.query_params
    subset = parse_subset(query.get("_summary"), query.getlist("_elements"))
    return fhir_response(request, subset_resource(stored, subset), 200, headers)


def _criteria(request: Request) -> list[tuple[str, str]]:
    pairs = [(k, v) for k, v in request.query_params.multi_items() if k not in ("_format", "_pretty")]
    if not pairs:
        raise InvalidInput("conditional interaction without search criteria")
    return pairs


@router.get("/{resource_type}/{id}", summary="read")
async def read(resource_type: str, id: str, request: Request, ctx: FhirContext = Ctx) -> Response:
    """read (FHIR R4B http §3.1.0.2): 200, 304, 404, 410."""
    check_type(resource_type)
    check_id(id)
    stored = await ctx.run(lambda uow: uow.resources.read(resource_type, id), commit=False, inline=True)
    return read_response(request, stored)


@router.get("/{resource_type}/{id}/_history/{version_id}", summary="vread")
async def vread(
    resource_type: str, id: str, version_id: str, request: Request, ctx: FhirContext = Ctx
) -> Response:
    """vread (FHIR R4B http §3.1.0.3)."""
    check_type(resource_type)
    check_id(id)
    version = parse_version(version_id, "version id")
    stored = await ctx.run(
        lambda uow: uow.resources.vread(resource_type, id, version), commit=False, inline=True
    )
    return read_response(request, stored)


@router.post("/{resource_type}", summary="create", status_code=201)
async def create(resource_type: str, request: Request, ctx: FhirContext = Ctx) -> Response:
    """create and conditional create with `If-None-Exist` (FHIR R4B http §3.1.0.9, §3.1.0.9.1)."""
    check_type(resource_type)
    resource = await resource_body(request, ctx)
    check_body_type(resource, resource_type)
    header = request.headers.get("if-none-exist")
    criteria = parse_criteria(header) if header is not None else None

    def work(uow: UnitOfWork) -> Outcome:
        return interactions.create(uow.resources, resource, if_none_exist=criteria)

    return write_response(request, ctx, await ctx.run(work))


@router.put("/{resource_type}/{id}", summary="update")
async def update(resource_type: str, id: str, request: Request, ctx: FhirContext = Ctx) -> Response:
    """update, create-on-update (FHIR R4B http §3.1.0.4)."""
    check_type(resource_type)
    check_id(id)
    resource = await resource_body(request, ctx)
    check_body_type(resource, resource_type)
    version = if_match(request)
    result = await ctx.run(
        lambda uow: interactions.update(uow.resources, resource_type, id, resource, if_match=version)
    )
    return write_response(request, ctx, result)


@router.put("/{resource_type}", summary="conditional update")
async def conditional_update(resource_type: str, request: Request, ctx: FhirContext = Ctx) -> Response:
    """conditional update `PUT Type?criteria` (FHIR R4B http §3.1.0.4.3)."""
    check_type(resource_type)
    criteria = _criteria(request)
    resource = await resource_body(request, ctx)
    check_body_type(resource, resource_type)
    version = if_match(request)

    def work(uow: UnitOfWork) -> Outcome:
        return interactions.conditional_update(
            uow.resources, resource_type, criteria, resource, if_match=version
        )

    return write_response(request, ctx, await ctx.run(work))


@router.patch("/{resource_type}/{id}", summary="patch")
async def patch(resource_type: str, id: str, request: Request, ctx: FhirContext = Ctx) -> Response:
    """patch with JSON Patch, `application/json-patch+json` (FHIR R4B http §3.1.0.7)."""
    check_type(resource_type)
    check_id(id)
    check_body_media_type(request, (JSON_PATCH,))
    operations = json_loads(await read_body(request, ctx.settings.http.max_body_bytes))
    version = if_match(request)
    result = await ctx.run(
        lambda uow: interactions.patch(uow.resources, resource_type, id, operations, if_match=version)
    )
    return write_response(request, ctx, result)


@router.delete("/{resource_type}/{id}", summary="delete", status_code=204)
async def delete(resource_type: str, id: str, request: Request, ctx: FhirContext = Ctx) -> Response:
    """delete, soft (FHIR R4B http §3.1.0.6); a later read answers 410."""
    check_type(resource_type)
    check_id(id)
    version = if_match(request)
    result = await ctx.run(
        lambda uow: interactions.delete(uow.resources, resource_type, id, if_match=version)
    )
    return write_response(request, ctx, result)


@router.delete("/{resource_type}", summary="conditional delete", status_code=204)
async def conditional_delete(resource_type: str, request: Request, ctx: FhirContext = Ctx) -> Response:
    """conditional delete `DELETE Type?criteria`, single-match mode (FHIR R4B http §3.1.0.6.1)."""
    check_type(resource_type)
    criteria = _criteria(request)
    result = await ctx.run(
        lambda uow: interactions.conditional_delete(uow.resources, resource_type, criteria)
    )
    return write_response(request, ctx, result)
