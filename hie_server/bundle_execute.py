"""batch and transaction Bundles: `POST [base]` (FHIR R4B http §3.1.0.11).

A transaction is one unit of work: every entry succeeds or nothing is written (the first
failing entry's error is the answer, naming `Bundle.entry[i]`). A batch runs each entry in
its own unit of work and reports each entry's outcome. Entries beyond
`http.max_bundle_entries` get 400 before anything is read.

May import: fastapi/starlette, orjson, `ehr_store`, `hie_server.*`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ehr_store import (
    DomainError,
    InvalidInput,
    Issue,
    ResourceRepository,
    TooCostly,
    UnitOfWork,
    json_dumps,
    json_loads_resource,
)
from hie_server import interactions
from hie_server.bundle_plan import METHOD_ORDER, Entry, Plan, check_unique_full_urls, parse_entry, resolve
from hie_server.bundles import searchset
from hie_server.context import FhirContext, fhir_context
from hie_server.errors import outcome, status_for
from hie_server.formats import check_body_media_type, fhir_response, read_body
from hie_server.interactions import Outcome
from hie_server.rest_crud import prefer

router = APIRouter()
Json = dict[str, Any]
_REASON = {200: "200 OK", 201: "201 Created", 204: "204 No Content"}
_TYPE_HEAD = re.compile(r"[A-Z][A-Za-z]*(?=[.\[]|$)")


def _located(error: DomainError, index: int) -> DomainError:
    """The same kind of error with diagnostics prefixed by the failing entry."""
    where = f"Bundle.entry[{index}]"
    if all(i.diagnostics.startswith(where) for i in error.issues):
        return error
    issues = [
        Issue(i.severity, i.code, f"{where}: {i.diagnostics}",
              tuple(_in_entry(where, e) for e in i.expression) or (where,))
        for i in error.issues
    ]
    return dataclasses.replace(error, issues=issues, diagnostics="")


def _in_entry(where: str, expression: str) -> str:
    """An entry resource's FHIRPath expression (`Patient.gender`, `id`) as a path in the Bundle
    (`Bundle.entry[2].resource.gender`), as OperationOutcome.issue.expression is read against
    the submitted resource (FHIR R4B operationoutcome §2.36.3)."""
    if expression.startswith("Bundle."):
        return expression
    head = _TYPE_HEAD.match(expression)
    return f"{where}.resource{expression[head.end():]}" if head else f"{where}.resource.{expression}"


def _run_entry(repo: ResourceRepository, entry: Entry, base: str) -> tuple[int, Any]:
    """Execute one resolved entry; returns (status, StoredResource | bytes | None)."""
    rtype, target = entry.resource_type, entry.target_id
    if entry.method == "DELETE":
        if entry.skip or target is None:
            return 204, None
        return 204, interactions.delete(repo, rtype, target, if_match=entry.if_match).stored
    if entry.method == "POST":
        if entry.skip:
            return 200, entry.existing
        assert entry.resource is not None
        body = {k: v for k, v in entry.resource.items() if k != "id"}
        return 201, repo.create(body, id=target)
    if entry.method == "PUT":
        assert entry.resource is not None and target is not None
        result: Outcome = interactions.update(
            repo, rtype, target, {**entry.resource, "id": target}, if_match=entry.if_match
        )
        return result.status, result.stored
    if entry.method == "PATCH":
        assert entry.resource is not None and target is not None
        ops = entry.resource["operations"]
        return 200, interactions.patch(repo, rtype, target, ops, if_match=entry.if_match).stored
    return _run_read(repo, entry, base)


def _run_read(repo: ResourceRepository, entry: Entry, base: str) -> tuple[int, Any]:
    if entry.id is not None:
        if entry.version is not None:
            return 200, repo.vread(entry.resource_type, entry.id, entry.version)
        return 200, repo.read(entry.resource_type, entry.id)
    params = list(entry.query or ())
    result = repo.search(entry.resource_type, params)
    links = [{"relation": "self", "url": f"{base}/{entry.resource_type}?{urlencode(params)}"}]
    return 200, searchset(
        base, result.matches, result.included, links=links, total=result.total, warnings=result.warnings
    )


def _response_entry(status: int, value: Any, base: str, representation: bool) -> Json:
    if isinstance(value, bytes):  # a searchset
        return {"resource": orjson.Fragment(value), "response": {"status": _REASON.get(status, str(status))}}
    response: Json = {"status": _REASON.get(status, str(status))}
    entry: Json = {}
    if value is not None:
        entry["fullUrl"] = f"{base}/{value.reference}"
        if status == 201:
            response["location"] = f"{base}/{value.reference}/_history/{value.version_id}"
        response["etag"] = value.etag
        response["lastModified"] = value.last_updated.isoformat()
        if representation and value.content and not value.deleted:
            entry["resource"] = orjson.Fragment(value.content)
    entry["response"] = response
    return entry


def _error_entry(error: DomainError) -> Json:
    status = status_for(error)
    return {"response": {"status": str(status), "outcome": outcome(error.issues)}}


def _is_plain_read(entry: Entry) -> bool:
    return entry.method in ("GET", "HEAD") and entry.id is not None and entry.version is None


def _read_all(repo: ResourceRepository, reads: list[Entry], base: str) -> dict[int, Json]:
    """The transaction's `GET Type/id` entries in one `read_many` round-trip (after the writes);
    a missing one is read alone so it fails with its own 404/410."""
    found = repo.read_many([(e.resource_type, str(e.id)) for e in reads])
    results: dict[int, Json] = {}
    for entry in reads:
        stored = found.get((entry.resource_type, str(entry.id)))
        if stored is None:
            try:
                stored = repo.read(entry.resource_type, str(entry.id))
            except DomainError as exc:
                raise _located(exc, entry.index) from None
        results[entry.index] = _response_entry(200, stored, base, True)
    return results


def _transaction(entries: list[Entry], base: str, representation: bool) -> Callable[[UnitOfWork], list[Json]]:
    def work(uow: UnitOfWork) -> list[Json]:
        plan: Plan = resolve(entries, uow.resources)
        uow.resources.prefetch(  # the written resources' current rows in one round-trip (store write-behind)
            (e.resource_type, e.target_id)
            for e in plan.entries
            if e.method in ("POST", "PUT", "PATCH", "DELETE") and e.target_id is not None and not e.skip
        )
        results: dict[int, Json] = {}
        for entry in plan.entries:
            if _is_plain_read(entry):
                continue
            try:
                status, value = _run_entry(uow.resources, entry, base)
            except DomainError as exc:
                raise _located(exc, entry.index) from None
            shown = representation or entry.method in ("GET", "HEAD")
            results[entry.index] = _response_entry(status, value, base, shown)
        results.update(_read_all(uow.resources, [e for e in plan.entries if _is_plain_read(e)], base))
        return [results[i] for i in sorted(results)]

    return work


async def _batch(
    ctx: FhirContext, parsed: list[Entry | DomainError], base: str, representation: bool
) -> list[Json]:
    """Each entry in its own unit of work, criteria and references resolved for all entries
    first; if that fails (one bad criterion), each entry is resolved on its own instead."""
    results: dict[int, Json] = {}
    good: list[Entry] = []
    for i, item in enumerate(parsed):
        if isinstance(item, DomainError):
            results[i] = _error_entry(item)
        else:
            good.append(item)
    try:
        ordered = (await ctx.run(lambda uow: resolve(good, uow.resources), commit=False)).entries
        per_entry = False
    except DomainError:
        ordered, per_entry = sorted(good, key=lambda e: (METHOD_ORDER[e.method], e.index)), True
    for entry in ordered:

        def work(uow: UnitOfWork, entry: Entry = entry) -> tuple[int, Any]:
            if per_entry:
                resolve([entry], uow.resources)
            return _run_entry(uow.resources, entry, base)

        try:
            status, value = await ctx.run(work)
            shown = representation or entry.method in ("GET", "HEAD")
            results[entry.index] = _response_entry(status, value, base, shown)
        except DomainError as exc:
            results[entry.index] = _error_entry(_located(exc, entry.index))
    return [results[i] for i in sorted(results)]


def parse_bundle(data: bytes, max_entries: int) -> tuple[str, list[Any]]:
    """(type, entries) of a batch/transaction Bundle. Raises: InvalidInput, TooCostly (400)."""
    bundle = json_loads_resource(data)
    if bundle["resourceType"] != "Bundle":
        raise InvalidInput(
            f"POST to the base expects a Bundle, not {bundle['resourceType']}", expression=("resourceType",)
        )
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise InvalidInput(
            f"Bundle.type {kind!r} cannot be processed; send batch or transaction",
            expression=("Bundle.type",),
        )
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise InvalidInput("Bundle.entry must be an array", expression=("Bundle.entry",))
    if len(entries) > max_entries:
        raise TooCostly(f"the Bundle has {len(entries)} entries; at most {max_entries} are accepted")
    return kind, entries


@router.post("", summary="batch/transaction")
@router.post("/", include_in_schema=False)
async def batch_or_transaction(request: Request, ctx: FhirContext = Depends(fhir_context)) -> Response:
    """Process a batch or transaction Bundle (FHIR R4B http §3.1.0.11), posted to `[base]` or
    `[base]/` (the same interaction: answered here, not with a redirect a client may not follow)."""
    check_body_media_type(request)
    kind, raw_entries = parse_bundle(
        await read_body(request, ctx.settings.http.max_body_bytes), ctx.settings.http.max_bundle_entries
    )
    base = ctx.base_url(request)
    representation = prefer(request).get("return", "representation") != "minimal"
    if kind == "transaction":
        entries = [parse_entry(i, raw, base) for i, raw in enumerate(raw_entries)]
        check_unique_full_urls(entries)
        results = await ctx.run(_transaction(entries, base, representation))
    else:
        parsed: list[Entry | DomainError] = []
        for i, raw in enumerate(raw_entries):
            try:
                parsed.append(parse_entry(i, raw, base))
            except DomainError as exc:
                parsed.append(_located(exc, i))
        results = await _batch(ctx, parsed, base, representation)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": f"{kind}-response"}
    if results:  # FHIR JSON has no empty arrays (json §2.6.2)
        bundle["entry"] = results
    return fhir_response(request, json_dumps(bundle))
