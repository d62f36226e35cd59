"""EMPI operations over FHIR REST: Patient/$match, Patient/{id}/$everything, Patient/$merge,
Patient/{id}/$unlink.

`empi_module(service)` returns the `FhirModule` to pass to `create_app(..., modules=[...])`.
Each route runs one unit of work; errors are domain errors mapped by `hie_server.errors`.

- `POST Patient/$match` (FHIR R4B Patient-match): Parameters `resource` (Patient, validated
  like a create: 400 with expressions such as `Parameters.parameter[0].resource.gender`),
  `onlyCertainMatches` (boolean), `count` (integer) → searchset Bundle with `search.score`
  and the match-grade extension.
- `GET|POST Patient/{id}/$everything` (FHIR R4B Patient-everything) on a golden or source
  Patient: `_since`, `_type`, `start`, `end`, `_count`, `_offset` → paged searchset Bundle
  (the health record: no AuditEvent, see `ehr_store.empi.operations.NOT_IN_RECORD`).
- `POST Patient/$merge` (FHIR R5 Patient-merge, subset): `source-patient`, `target-patient`
  (Reference) → Parameters with `result` (the surviving resident record).
- `POST Patient/{id}/$unlink` (local): undo a source Patient's link to its resident record →
  Parameters with `result` (the new resident record).

May import: fastapi/starlette, `ehr_store`, `ehr_store.empi`, `hie_server.*`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ehr_store import InvalidInput, Issue, UnitOfWork, json_loads_resource, validate_resource
from ehr_store.empi import EmpiService, everything, match, match_bundle
from hie_server.app import FhirModule
from hie_server.bundles import paging_links, searchset
from hie_server.capability import FhirOperation
from hie_server.context import FhirContext, check_id, fhir_context
from hie_server.formats import check_body_media_type, fhir_response, read_body

Json = dict[str, Any]
Ctx = Depends(fhir_context)
BASE_DEF = "http://qingyuan-hie.cn/fhir/OperationDefinition"


def _parameter(params: Json, name: str) -> Json | None:
    return next((p for p in params.get("parameter", []) if p.get("name") == name), None)


async def _parameters(request: Request, ctx: FhirContext) -> Json:
    check_body_media_type(request)
    body = json_loads_resource(await read_body(request, ctx.settings.http.max_body_bytes))
    if body.get("resourceType") != "Parameters":
        raise InvalidInput("the operation expects a Parameters resource", expression=("resourceType",))
    return body


def _match_patient(params: Json) -> Json:
    """The `resource` parameter of $match, validated like a Patient create (FHIR R4B
    Patient-match: `resource` 1..1 Patient). Issue expressions point into the Parameters
    (`Parameters.parameter[0].resource.gender`).
    Raises: InvalidInput (missing, not a Patient, or not a valid Patient).
    """
    items = params.get("parameter")
    items = items if isinstance(items, list) else []
    named = [i for i, p in enumerate(items) if isinstance(p, dict) and p.get("name") == "resource"]
    resource = items[named[0]].get("resource") if named else None
    if not isinstance(resource, dict):
        raise InvalidInput(
            "parameter resource (a Patient) is required",
            expression=("Parameters.parameter.where(name='resource')",),
        )
    where = f"Parameters.parameter[{named[0]}].resource"
    try:
        validate_resource(resource, resource_type="Patient")
    except InvalidInput as exc:
        issues = [
            Issue(i.severity, i.code, i.diagnostics, tuple(_into(where, e) for e in i.expression) or (where,))
            for i in exc.issues
        ]
        raise InvalidInput(issues=issues) from None
    return resource


def _into(where: str, expression: str) -> str:
    """`Patient.gender` (or `resourceType`) of the resource parameter → a path in the Parameters."""
    if expression == "Patient" or expression.startswith(("Patient.", "Patient[")):
        return where + expression.removeprefix("Patient")
    return f"{where}.{expression}"


def _reference_id(params: Json, name: str) -> str:
    param = _parameter(params, name) or {}
    ref = str(param.get("valueReference", {}).get("reference", ""))
    if not ref.startswith("Patient/"):
        raise InvalidInput(
            f"parameter {name} must be a Reference to a Patient",
            expression=(f"Parameters.parameter.where(name='{name}')",),
        )
    return check_id(ref.split("/", 1)[1])


def _result(golden_id: str) -> Json:
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": "result", "valueReference": {"reference": f"Patient/{golden_id}"}}],
    }


def _actor(request: Request) -> str:
    return str(getattr(request.state, "user", None) or "api")


def build_router(service: EmpiService) -> APIRouter:
    """Routes of the EMPI operations bound to `service`."""
    router = APIRouter()

    @router.post("/Patient/$match")
    async def patient_match(request: Request, ctx: FhirContext = Ctx) -> Response:
        params = await _parameters(request, ctx)
        resource = _match_patient(params)
        only = bool((_parameter(params, "onlyCertainMatches") or {}).get("valueBoolean", False))
        count = int((_parameter(params, "count") or {}).get("valueInteger", 10))
        base = ctx.base_url(request)

        def work(uow: UnitOfWork) -> Json:
            return match_bundle(match(service, uow.resources, resource, only_certain=only, count=count), base)

        return fhir_response(request, await ctx.run(work, commit=False))

    @router.api_route("/Patient/{id}/$everything", methods=["GET", "POST"])
    async def patient_everything(id: str, request: Request, ctx: FhirContext = Ctx) -> Response:
        check_id(id)
        q = request.query_params
        limits = ctx.settings.http
        count = min(int(q.get("_count", limits.default_page_size)), limits.max_page_size)
        offset = int(q.get("_offset", "0"))
        since = datetime.fromisoformat(q["_since"].replace("Z", "+00:00")) if q.get("_since") else None
        types = [t for v in q.getlist("_type") for t in v.split(",") if t] or None
        base = ctx.base_url(request)

        def work(uow: UnitOfWork) -> bytes:
            page = everything(
                service,
                uow.resources,
                id,
                since=since,
                types=types,
                start=q.get("start"),
                end=q.get("end"),
                count=count,
                offset=offset,
            )
            kept = [(k, v) for k, v in q.multi_items() if k not in ("_count", "_offset")]
            links = paging_links(
                base, f"Patient/{id}/$everything", kept, count, offset, page.next_offset is not None
            )
            return searchset(base, page.resources, [], links=links, total=page.total)

        return fhir_response(request, await ctx.run(work, commit=False))

    @router.post("/Patient/$merge")
    async def patient_merge(request: Request, ctx: FhirContext = Ctx) -> Response:
        params = await _parameters(request, ctx)
        source, target = _reference_id(params, "source-patient"), _reference_id(params, "target-patient")
        actor = _actor(request)
        survivor = await ctx.run(lambda uow: service.merge(uow.resources, source, target, by=actor))
        return fhir_response(request, _result(survivor))

    @router.post("/Patient/{id}/$unlink")
    async def patient_unlink(id: str, request: Request, ctx: FhirContext = Ctx) -> Response:
        check_id(id)
        actor = _actor(request)
        new_golden = await ctx.run(lambda uow: service.unlink(uow.resources, id, by=actor))
        return fhir_response(request, _result(new_golden))

    return router


OPERATIONS = (
    FhirOperation("match", "http://hl7.org/fhir/OperationDefinition/Patient-match", ("Patient",)),
    FhirOperation(
        "everything",
        "http://hl7.org/fhir/OperationDefinition/Patient-everything",
        ("Patient",),
        "The resident's health record from every facility, ordered by type then id: the Patients, "
        "then every Patient-compartment resource except AuditEvent (security records, not health "
        "data; search AuditEvent?patient= for them). Provenance is included.",
    ),
    FhirOperation("merge", "http://hl7.org/fhir/OperationDefinition/Patient-merge", ("Patient",)),
    FhirOperation("unlink", f"{BASE_DEF}/Patient-unlink", ("Patient",)),
)


def empi_module(service: EmpiService) -> FhirModule:
    """The EMPI operations as a module for `create_app(settings, store, modules=[...])`."""
    return FhirModule(build_router(service), OPERATIONS)
