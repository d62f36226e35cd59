"""Terminology operations over FHIR REST (WS/T 790.9 术语注册), type and instance level:

- `CodeSystem/$lookup`, `CodeSystem/$validate-code`, `CodeSystem/$subsumes`
- `ValueSet/$expand`, `ValueSet/$validate-code`
- `ConceptMap/$translate`

GET takes the inputs from the query string, POST from a Parameters body (FHIR R4B
Operations §3.1.0.11). `terminology_module(service)` returns the `FhirModule` to pass to
`create_app(..., modules=[...])`. The work runs in the thread pool (the first call builds
the index from the store); errors are domain errors mapped by `hie_server.errors`.

May import: fastapi/starlette, `ehr_store`, `terminology`, `hie_server.*`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ehr_store import Store, json_loads_resource
from hie_server.app import FhirModule
from hie_server.capability import FhirOperation
from hie_server.context import FhirContext, check_id, fhir_context
from hie_server.formats import check_body_media_type, fhir_response, read_body
from hie_server.settings import HieSettings
from terminology import (
    In,
    TerminologyIndex,
    TerminologyService,
    codesystem_validate_code,
    expand,
    lookup,
    subsumes,
    translate,
    valueset_validate_code,
)

Json = dict[str, Any]
Operation = Callable[..., Json]
Ctx = Depends(fhir_context)

_OPERATIONS: dict[tuple[str, str], Operation] = {
    ("CodeSystem", "lookup"): lookup,
    ("CodeSystem", "validate-code"): codesystem_validate_code,
    ("CodeSystem", "subsumes"): subsumes,
    ("ValueSet", "expand"): expand,
    ("ValueSet", "validate-code"): valueset_validate_code,
    ("ConceptMap", "translate"): translate,
}


async def _inputs(request: Request, ctx: FhirContext) -> In:
    if request.method == "GET":
        return In(query=list(request.query_params.multi_items()))
    check_body_media_type(request)
    body = json_loads_resource(await read_body(request, ctx.settings.http.max_body_bytes))
    return In(body, query=[(k, v) for k, v in request.query_params.multi_items() if not k.startswith("_")])


def build_router(service: TerminologyService) -> APIRouter:
    """Routes of the six terminology operations bound to `service`."""
    router = APIRouter()

    def add(resource_type: str, name: str, operation: Operation) -> None:
        async def type_level(request: Request, ctx: FhirContext = Ctx) -> Response:
            inputs = await _inputs(request, ctx)
            return fhir_response(request, await _run(service, operation, inputs, None))

        async def instance_level(id: str, request: Request, ctx: FhirContext = Ctx) -> Response:
            check_id(id)
            inputs = await _inputs(request, ctx)
            return fhir_response(request, await _run(service, operation, inputs, id))

        methods = ["GET", "POST"]
        router.add_api_route(
            f"/{resource_type}/${name}", type_level, methods=methods, name=f"{resource_type}-{name}"
        )
        router.add_api_route(
            f"/{resource_type}/{{id}}/${name}",
            instance_level,
            methods=methods,
            name=f"{resource_type}-{name}-instance",
        )

    for (resource_type, name), operation in _OPERATIONS.items():
        add(resource_type, name, operation)
    return router


async def _run(
    service: TerminologyService, operation: Operation, inputs: In, resource_id: str | None
) -> Json:
    def work() -> Json:
        index: TerminologyIndex = service.index()
        result: Json = operation(index, inputs, resource_id=resource_id)
        return result

    return await run_in_threadpool(work)


OPERATIONS = tuple(
    FhirOperation(name, f"http://hl7.org/fhir/OperationDefinition/{resource_type}-{name}", (resource_type,))
    for resource_type, name in _OPERATIONS
)


def terminology_modules(settings: HieSettings, store: Store) -> list[FhirModule]:
    """The module list `hie serve` passes to `serve(..., modules=...)`: a `TerminologyService`
    over `store` with `settings.terminology`."""
    return [terminology_module(TerminologyService(store, settings.terminology))]


def terminology_module(service: TerminologyService) -> FhirModule:
    """The terminology operations as a module for `create_app(settings, store, modules=[...])`."""
    return FhirModule(build_router(service), OPERATIONS)
