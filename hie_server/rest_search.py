"""FHIR search (type and system level, GET and POST `_search`) and `_history` routes.

Paging is offset-based: the links carry `_count` and `_offset`, so following `next` until
it is absent walks the whole result (FHIR R4B http §3.1.0.1.13, search §3.1.1.5.6).

May import: fastapi/starlette, `ehr_store`, `hie_server.*`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ehr_store import HistoryPage, InvalidInput, SearchResult, UnitOfWork
from hie_server.bundles import Subset, history_bundle, paging_links, parse_subset, searchset
from hie_server.context import FhirContext, check_id, check_type, fhir_context
from hie_server.formats import FORM, check_body_media_type, fhir_response, read_body
from hie_server.rest_crud import prefer

router = APIRouter()
Ctx = Depends(fhir_context)
_PRESENTATION = frozenset({"_format", "_pretty"})


@dataclass(frozen=True, slots=True)
class Paging:
    """Page size (already capped at `http.max_page_size`) and offset of a search or history page."""

    count: int
    offset: int


_MAX_INT = 2**31 - 1  # beyond any real page or offset, and within every database's INTEGER


def _int_param(value: str, name: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) > _MAX_INT:
        raise InvalidInput(
            f"{name}={value[:40]} is not a non-negative integer up to {_MAX_INT}", expression=(name,)
        )
    return int(value)


def paging(ctx: FhirContext, pairs: list[tuple[str, str]]) -> Paging:
    """`_count` (default and ceiling from settings) and `_offset` from the parameters."""
    http = ctx.settings.http
    values = dict(pairs)
    count = _int_param(values["_count"], "_count") if "_count" in values else http.default_page_size
    offset = _int_param(values["_offset"], "_offset") if "_offset" in values else 0
    return Paging(min(count, http.max_page_size), offset)


def _split(pairs: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], str | None, list[str]]:
    """(criteria for the store, `_summary`, `_elements`) from all parameters."""
    criteria = [
        (k, v) for k, v in pairs if k not in _PRESENTATION | {"_summary", "_elements", "_count", "_offset"}
    ]
    summary = next((v for k, v in pairs if k == "_summary"), None)
    elements = [v for k, v in pairs if k == "_elements"]
    return criteria, summary, elements


async def search_response(
    request: Request, ctx: FhirContext, resource_type: str | None, pairs: list[tuple[str, str]]
) -> Response:
    """Run a search and answer a searchset Bundle (FHIR R4B search §3.1.1).

    Raises: InvalidInput (bad parameter; unknown one under `Prefer: handling=strict`).
    """
    criteria, summary, elements = _split(pairs)
    subset = parse_subset(summary, elements)
    page = paging(ctx, pairs)
    strict = prefer(request).get("handling", "lenient") == "strict"
    base = ctx.base_url(request)
    path = resource_type or ""
    if (summary or "").lower() == "count" or page.count == 0:
        total = await ctx.run(lambda uow: uow.resources.count(resource_type, criteria), commit=False)
        links = [{"relation": "self", "url": f"{base}/{path}".rstrip("/") + f"?{urlencode(pairs)}"}]
        body = searchset(base, [], [], links=links, total=total)
        return fhir_response(request, body)
    store_params = [*criteria, ("_count", str(page.count)), ("_offset", str(page.offset))]

    def work(uow: UnitOfWork) -> SearchResult:
        return uow.resources.search(resource_type, store_params, strict=strict)

    result = await ctx.run(work, commit=False)
    link_params = [*criteria, *(("_summary", s) for s in ([summary] if summary else []))]
    link_params += [("_elements", e) for e in elements]
    links = paging_links(base, path, link_params, page.count, page.offset, result.has_more)
    body = searchset(
        base,
        result.matches,
        result.included,
        links=links,
        total=result.total,
        warnings=result.warnings,
        subset=subset,
    )
    return fhir_response(request, body)


async def _form_pairs(request: Request, ctx: FhirContext) -> list[tuple[str, str]]:
    """POST `_search` parameters: the form body plus any URL parameters (FHIR R4B http §3.1.0.8.1)."""
    check_body_media_type(request, (FORM,))
    body = await read_body(request, ctx.settings.http.max_body_bytes)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the _search form body is not UTF-8") from None
    return [*request.query_params.multi_items(), *parse_qsl(text, keep_blank_values=True)]


@router.get("/_history", summary="system history")
async def system_history(request: Request, ctx: FhirContext = Ctx) -> Response:
    """history-system (FHIR R4B http §3.1.0.4)."""
    return await history_response(request, ctx, None, None)


@router.get("/{resource_type}/_history", summary="type history")
async def type_history(resource_type: str, request: Request, ctx: FhirContext = Ctx) -> Response:
    """history-type (FHIR R4B http §3.1.0.4)."""
    return await history_response(request, ctx, check_type(resource_type), None)


@router.get("/{resource_type}/{id}/_history", summary="instance history")
async def instance_history(resource_type: str, id: str, request: Request, ctx: FhirContext = Ctx) -> Response:
    """history-instance (FHIR R4B http §3.1.0.4)."""
    return await history_response(request, ctx, check_type(resource_type), check_id(id))


@router.get("/{resource_type}", summary="search-type")
async def search_type(resource_type: str, request: Request, ctx: FhirContext = Ctx) -> Response:
    """search-type by GET (FHIR R4B http §3.1.0.8)."""
    check_type(resource_type)
    return await search_response(request, ctx, resource_type, list(request.query_params.multi_items()))


@router.post("/{resource_type}/_search", summary="search-type (POST)")
async def search_type_post(resource_type: str, request: Request, ctx: FhirContext = Ctx) -> Response:
    """search-type by POST with a form body (FHIR R4B http §3.1.0.8)."""
    check_type(resource_type)
    return await search_response(request, ctx, resource_type, await _form_pairs(request, ctx))


@router.post("/_search", summary="search-system (POST)")
async def search_system_post(request: Request, ctx: FhirContext = Ctx) -> Response:
    """search-system by POST (FHIR R4B http §3.1.0.8)."""
    return await search_response(request, ctx, None, await _form_pairs(request, ctx))


@router.get("", summary="search-system")
@router.get("/", include_in_schema=False)
async def search_system(request: Request, ctx: FhirContext = Ctx) -> Response:
    """search-system by GET at `[base]` or `[base]/`, `_type` narrows the types (FHIR R4B http
    §3.1.0.8)."""
    return await search_response(request, ctx, None, list(request.query_params.multi_items()))


def parse_instant(value: str, name: str, zone: str) -> datetime:
    """A `_since`/`_at` instant or dateTime; without an offset it is read in `zone`.

    Raises: InvalidInput.
    """
    try:
        moment = datetime.fromisoformat(value.strip().replace(" ", "+"))
    except ValueError:
        raise InvalidInput(f"{name}={value} is not a FHIR instant", expression=(name,)) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(zone))


async def history_response(
    request: Request, ctx: FhirContext, resource_type: str | None, id: str | None
) -> Response:
    """A history Bundle with `_since`, `_at`, `_count`, `_offset`. Raises: InvalidInput, NotFound."""
    pairs = [(k, v) for k, v in request.query_params.multi_items() if k not in _PRESENTATION]
    page = paging(ctx, pairs)
    values = dict(pairs)
    zone = ctx.settings.store.default_timezone
    since = parse_instant(values["_since"], "_since", zone) if "_since" in values else None
    at = parse_instant(values["_at"], "_at", zone) if "_at" in values else None

    def work(uow: UnitOfWork) -> HistoryPage:
        return uow.resources.history(
            resource_type, id, since=since, at=at, count=page.count, offset=page.offset
        )

    result = await ctx.run(work, commit=False)
    base = ctx.base_url(request)
    path = "/".join(p for p in (resource_type, id, "_history") if p)
    kept = [(k, v) for k, v in pairs if k in ("_since", "_at")]
    links = paging_links(base, path, kept, page.count, page.offset, result.has_more)
    return fhir_response(request, history_bundle(base, result.entries, links=links, total=result.total))


__all__ = ["Subset", "router", "search_response"]
