"""FHIR Bulk Data Access v2.0 over REST, and cohort building.

- Kick-off: `GET|POST [base]/$export`, `[base]/Patient/$export`, `[base]/Group/{id}/$export`
  with `Prefer: respond-async` → 202 + `Content-Location: [base]/$export-poll-status/{job}`.
- Status: `GET [base]/$export-poll-status/{job}` → 202 with `X-Progress` and `Retry-After`
  while running; 200 with the manifest (absolute file URLs, `transactionTime` of the kick-off)
  and `Expires` when complete; 500 OperationOutcome when failed. `DELETE` cancels (202).
- Files: `GET [base]/$export-file/{job}/{name}` streams the NDJSON file (gzip files with
  `Content-Encoding: gzip`); mounted as a root router (no FHIR JSON negotiation).
- `POST [base]/Group/$build-cohort` (Parameters `county`, `icd10`, `ageLow`, `ageHigh`) → the
  stored Group (hie-admin only, see policy ADMIN_OPERATIONS).

Access (on top of the endpoint rule `cdc-extract` in hie_server.auth.policy): only the principal
who kicked an export off (or hie-admin) may poll, download or cancel it; CDC staff need the
`cdc-identified` role (bulk files are identified records) and, below city level, may export
only cohort Groups of their own county. Without an identity provider (loopback mode) the local
operator acts as hie-admin.

May import: fastapi/starlette, `ehr_store`, `hie_server.*`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ehr_store import Forbidden, InvalidInput, Issue, json_loads_resource
from hie_server.app import FhirModule
from hie_server.auth.principal import CITY_COUNTY, IDENTIFIED_ROLE, Principal
from hie_server.bulk import BulkExporter, CohortSpec, build_cohort, group_county, parse_kickoff
from hie_server.bulk.exporter import ACTIVE
from hie_server.bulk.request import Level
from hie_server.capability import FhirOperation
from hie_server.context import FhirContext, check_id, fhir_context, http_date
from hie_server.errors import outcome_response
from hie_server.formats import check_body_media_type, fhir_response, read_body

Json = dict[str, Any]
Ctx = Depends(fhir_context)
NDJSON = "application/fhir+ndjson"
LOCAL = Principal("local-operator", "local-operator", "-", frozenset({"hie-admin"}))
BULK_DEF = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition"


def principal_of(request: Request) -> Principal:
    """The verified caller set by the auth middleware; the local operator without one."""
    found = getattr(request.state, "principal", None)
    return found if isinstance(found, Principal) else LOCAL


def _deny(rule: str, reason: str) -> Forbidden:
    return Forbidden(f"access refused by rule {rule!r}: {reason}")


def check_kickoff(p: Principal, level: Level, group: Json | None, types: tuple[str, ...]) -> None:
    """Who may start which export (see module docstring). Raises: Forbidden naming the rule."""
    if p.is_admin:
        return
    if "AuditEvent" in types:
        raise _deny("audit-admin-only", "only hie-admin exports AuditEvents")
    if not p.has(IDENTIFIED_ROLE):
        raise _deny(
            "bulk-identified", f"bulk files hold identified records; the {IDENTIFIED_ROLE} role is needed"
        )
    if p.county == CITY_COUNTY:
        return
    county = group_county(group) if group is not None else None
    if level == "group" and p.county and county and county.startswith(p.county):
        return
    raise _deny("bulk-county", "county CDC staff export only cohort Groups of their own county")


async def _params(request: Request, ctx: FhirContext) -> list[tuple[str, str]]:
    if request.method == "GET":
        return [(k, v) for k, v in request.query_params.multi_items() if k not in ("_format", "_pretty")]
    check_body_media_type(request)
    body = json_loads_resource(await read_body(request, ctx.settings.http.max_body_bytes))
    if body.get("resourceType") != "Parameters":
        raise InvalidInput("the kick-off body must be a Parameters resource", expression=("resourceType",))
    pairs = []
    for param in body.get("parameter", []):
        value = next((v for k, v in param.items() if k.startswith("value")), None)
        if value is None:
            raise InvalidInput(
                f"parameter {param.get('name')} has no value", expression=("Parameters.parameter",)
            )
        pairs.append((str(param.get("name", "")), str(value)))
    return pairs


def _manifest(job_output: Json, base: str, job_id: str) -> Json:
    out = dict(job_output)
    out["output"] = [{**o, "url": f"{base}/$export-file/{job_id}/{o['url']}"} for o in job_output["output"]]
    return out


def build_router(exporter: BulkExporter) -> APIRouter:
    """Kick-off, status/cancel and cohort routes (relative to the FHIR base)."""
    router = APIRouter()

    async def kick_off(request: Request, ctx: FhirContext, level: Level, group_id: str | None) -> Response:
        if "respond-async" not in request.headers.get("prefer", ""):
            raise InvalidInput("bulk export needs the header Prefer: respond-async", expression=("Prefer",))
        principal = principal_of(request)
        params = await _params(request, ctx)
        types = sorted(request.app.state.search_catalogue.resource_types)
        export = parse_kickoff(
            params, level, types, ctx.settings.store, group_id=group_id, url=str(request.url)
        )
        group = None
        if group_id is not None:
            stored = await ctx.run(lambda uow: uow.resources.read("Group", group_id), commit=False)
            group = orjson.loads(stored.content)
        check_kickoff(principal, level, group, export.types)
        job = await run_in_threadpool(exporter.kick_off, principal.subject, export)
        location = f"{ctx.base_url(request)}/$export-poll-status/{job.id}"
        return Response(status_code=202, headers={"Content-Location": location})

    @router.api_route("/$export", methods=["GET", "POST"])
    async def system_export(request: Request, ctx: FhirContext = Ctx) -> Response:
        return await kick_off(request, ctx, "system", None)

    @router.api_route("/Patient/$export", methods=["GET", "POST"])
    async def patient_export(request: Request, ctx: FhirContext = Ctx) -> Response:
        return await kick_off(request, ctx, "patient", None)

    @router.api_route("/Group/{id}/$export", methods=["GET", "POST"])
    async def group_export(id: str, request: Request, ctx: FhirContext = Ctx) -> Response:
        return await kick_off(request, ctx, "group", check_id(id))

    @router.get("/$export-poll-status/{job_id}")
    async def status(job_id: str, request: Request, ctx: FhirContext = Ctx) -> Response:
        p = principal_of(request)
        job = await run_in_threadpool(exporter.job_for, check_id(job_id), p.subject, admin=p.is_admin)
        if job.status in ACTIVE:
            headers = {
                "X-Progress": job.progress or job.status,
                "Retry-After": str(exporter.settings.retry_after_seconds),
            }
            return Response(status_code=202, headers=headers)
        if job.status == "error":
            return outcome_response(500, [_issue(f"the export failed: {job.error}")])
        assert job.output is not None
        headers = {"Expires": http_date(job.expires_at)} if job.expires_at else {}
        return fhir_response(request, _manifest(job.output, ctx.base_url(request), job.id), headers=headers)

    @router.delete("/$export-poll-status/{job_id}")
    async def cancel(job_id: str, request: Request) -> Response:
        p = principal_of(request)
        await run_in_threadpool(exporter.cancel, check_id(job_id), p.subject, admin=p.is_admin)
        return Response(status_code=202)

    @router.post("/Group/$build-cohort")
    async def build(request: Request, ctx: FhirContext = Ctx) -> Response:
        if not principal_of(request).is_admin:
            raise _deny("admin-operation", "$build-cohort is for hie-admin")
        values = dict(await _params(request, ctx))
        spec = CohortSpec(
            values.get("county"),
            values.get("icd10"),
            int(values["ageLow"]) if values.get("ageLow") else None,
            int(values["ageHigh"]) if values.get("ageHigh") else None,
        )
        stored = await run_in_threadpool(build_cohort, ctx.store, spec)
        return fhir_response(
            request,
            stored.content,
            status=200,
            headers={"Location": f"{ctx.base_url(request)}/Group/{stored.id}/_history/{stored.version_id}"},
        )

    return router


def _issue(text: str) -> Issue:
    return Issue("error", "exception", text)


class NdjsonFileResponse(Response):
    """Streams a file from disk in 1 MiB chunks read in a worker thread (flat memory).

    Unlike starlette's FileResponse it does not race the body against `receive()` for a
    disconnect: the auth middleware's replayed request answers `http.disconnect` right after
    the body, which would cut FileResponse/StreamingResponse short."""

    chunk_size = 1 << 20

    def __init__(self, path: Path, headers: dict[str, str]) -> None:
        super().__init__(
            content=None, media_type=NDJSON, headers={**headers, "Content-Length": str(path.stat().st_size)}
        )
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        with self.path.open("rb") as source:
            while True:
                chunk = await run_in_threadpool(source.read, self.chunk_size)
                more = len(chunk) == self.chunk_size
                await send({"type": "http.response.body", "body": chunk, "more_body": more})
                if not more:
                    return


def file_router(exporter: BulkExporter, base_path: str) -> APIRouter:
    """`GET {base}/$export-file/{job}/{name}`: a completed job's NDJSON file, streamed from disk."""
    router = APIRouter()

    @router.get(f"{base_path.rstrip('/')}/$export-file/{{job_id}}/{{name}}")
    async def download(job_id: str, name: str, request: Request) -> Response:
        p = principal_of(request)
        path = await run_in_threadpool(
            exporter.file_path, check_id(job_id), name, p.subject, admin=p.is_admin
        )
        headers = {"Content-Encoding": "gzip"} if name.endswith(".gz") else {}
        return NdjsonFileResponse(path, headers)

    return router


OPERATIONS = (
    FhirOperation("export", f"{BULK_DEF}/export", ()),
    FhirOperation("export", f"{BULK_DEF}/patient-export", ("Patient",)),
    FhirOperation("export", f"{BULK_DEF}/group-export", ("Group",)),
    FhirOperation(
        "build-cohort", "http://qingyuan-hie.cn/fhir/OperationDefinition/Group-build-cohort", ("Group",)
    ),
)


def bulk_module(exporter: BulkExporter) -> FhirModule:
    """Kick-off/status/cohort routes as a module for `create_app(..., modules=[...])`; mount
    `file_router(exporter, settings.http.base_path)` as a root router for the downloads."""
    return FhirModule(build_router(exporter), OPERATIONS)
