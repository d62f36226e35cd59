"""`create_app(settings, store)`: the FastAPI application (no globals, no import-time state).

Mounts the FHIR REST API under `settings.http.base_path` (default `/fhir`), installs the
error handlers (`hie_server.errors`), a request-id middleware and a body-size guard.
Other modules contribute routers and operations through `FhirModule`s, mounted before the
generic `/{type}/{id}` routes so `Patient/$everything`-style paths reach them.

May import: fastapi/starlette, `ehr_store`, `hie_server.*`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from ehr_store import Issue, Store
from ehr_store.empi import EmpiService
from hie_server import bundle_execute, capability, rest_crud, rest_search
from hie_server.auth.install import install as auth_install
from hie_server.capability import CapabilityCache, FhirOperation, SearchCatalogue
from hie_server.context import FhirContext
from hie_server.errors import install_error_handlers, outcome_response
from hie_server.formats import negotiate_dependency
from hie_server.settings import HieSettings


@dataclass(frozen=True)
class FhirModule:
    """Routes (relative to the FHIR base) and the operations they implement, for the
    CapabilityStatement."""

    router: APIRouter
    operations: Sequence[FhirOperation] = field(default_factory=tuple)


class RequestGuard:
    """Pure ASGI middleware: request id (`X-Request-Id`, echoed) and a Content-Length limit (413)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body_bytes:
            text = f"request body of {int(length)} bytes exceeds the limit of {self.max_body_bytes} bytes"
            response = outcome_response(413, [Issue("error", "too-costly", text)], {"X-Request-Id": rid})
            await response(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", rid.encode("latin-1")))
            await send(message)

        await self.app(scope, receive, send_with_id)


def default_search_catalogue(settings: HieSettings) -> SearchCatalogue:
    """Resource types and search parameters from ehr_store's search registry."""
    from ehr_store.search import get_registry

    registry = get_registry(settings.store.default_timezone)
    return SearchCatalogue(frozenset(registry.resource_types), registry.params_for)


def _version() -> str:
    try:
        return version("qingyuan-hie")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def create_app(
    settings: HieSettings,
    store: Store,
    *,
    modules: Sequence[FhirModule] = (),
    root_routers: Sequence[APIRouter] = (),
    search_catalogue: SearchCatalogue | None = None,
    identity: EmpiService | None = None,
) -> FastAPI:
    """Build the application around an open store.

    `modules` add routers (mounted under the FHIR base, before the generic routes) and
    operations (listed in the CapabilityStatement). `root_routers` are mounted at `/`
    (e.g. HL7 v2 over HTTP at `/hl7v2`). `identity`: the EMPI linking source Patients written
    through the API, as ingestion does (`hie serve` passes its EmpiService; None: stored as
    sent). The caller owns `store` and closes it.
    """
    app = FastAPI(
        title="Qingyuan HIE FHIR R4B API",
        version=_version(),
        docs_url=None,  # served below from the vendored Swagger UI: no CDN at run time
        openapi_url="/openapi.json",
    )
    _install_offline_docs(app)
    app.state.settings = settings
    app.state.fhir = FhirContext(settings, store, identity)
    app.state.capability = CapabilityCache(operations=[op for m in modules for op in m.operations])
    app.state.search_catalogue = search_catalogue or default_search_catalogue(settings)
    install_error_handlers(app)
    for root_router in root_routers:
        app.include_router(root_router)
    base = settings.http.base_path.rstrip("/")
    routers = [m.router for m in modules]
    routers += [capability.router, bundle_execute.router, rest_search.router, rest_crud.router]
    for router in routers:
        app.include_router(router, prefix=base, tags=["FHIR"], dependencies=[Depends(negotiate_dependency)])
    auth_install(app, settings, store)  # authentication, access rules, audit (when configured)
    app.add_middleware(RequestGuard, max_body_bytes=settings.http.max_body_bytes)
    return app


def _install_offline_docs(app: FastAPI) -> None:
    """OpenAPI docs at `/docs` with Swagger UI assets from the `swagger-ui-bundle` package, so the
    page works on an intranet without internet access (FastAPI's default loads them from a CDN)."""
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} — docs",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    app.add_api_route("/docs", docs, include_in_schema=False, methods=["GET"])
