"""`install(app, settings, store)`: wire authentication, access rules and audit into an app.

Called by `hie_server.app.create_app`. Does nothing unless an identity provider is configured
(`HIE_AUTH__ISSUER`) or audit is switched on (`HIE_AUDIT__ENABLED=true`; by default audit is
on exactly when an identity provider is; `hie serve` switches it on through `serving_settings`).
Publishes `/.well-known/smart-configuration` and
`<base>/.well-known/smart-configuration` when an identity provider is configured.

`app.state.audit_writer` (AuditWriter | None): call `close()` at shutdown (the runtime does).

May import: fastapi/starlette, `ehr_store`, `hie_server.*`.
"""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from ehr_store import DomainError, Store
from hie_server.auth.audit import AuditWriter
from hie_server.auth.guard import AccessGuard
from hie_server.auth.keycloak_admin import Introspector
from hie_server.auth.middleware import AuthAuditMiddleware
from hie_server.auth.smart import smart_configuration
from hie_server.auth.tokens import TokenVerifier
from hie_server.settings import HieSettings


def smart_router(verifier: TokenVerifier, base_path: str) -> APIRouter:
    """GET `/.well-known/smart-configuration` (root and under the FHIR base), public."""
    router = APIRouter()
    cached: dict[str, Any] = {}

    async def document() -> JSONResponse:
        if "doc" not in cached:
            discovery = None
            with contextlib.suppress(DomainError):
                discovery = await run_in_threadpool(verifier.jwks.discovery)
            cached["doc"] = smart_configuration(verifier.issuer, discovery)
        return JSONResponse(cached["doc"], headers={"Cache-Control": "public, max-age=300"})

    for prefix in ("", base_path.rstrip("/")):
        router.add_api_route(
            f"{prefix}/.well-known/smart-configuration", document, methods=["GET"], include_in_schema=False
        )
    return router


def audit_enabled(settings: HieSettings) -> bool:
    """Audit on when forced by `audit.enabled`, else exactly when an identity provider is configured."""
    forced = settings.audit.enabled
    return settings.auth.enabled if forced is None else forced


def serving_settings(settings: HieSettings) -> HieSettings:
    """The settings `hie serve` (and so `hie demo`) runs with: audit on unless
    `HIE_AUDIT__ENABLED` says otherwise (issue 6: every record access produces an AuditEvent,
    also in the unauthenticated loopback demo, where the agent is `anonymous`). Apps built
    directly with `create_app` (tests, embedding) keep the section's own default."""
    if settings.audit.enabled is not None:
        return settings
    return settings.model_copy(update={"audit": settings.audit.model_copy(update={"enabled": True})})


def install(app: FastAPI, settings: HieSettings, store: Store) -> None:
    """Add the auth/audit middleware and the SMART configuration routes (see module docstring)."""
    auth = settings.auth
    app.state.audit_writer = None
    if not auth.enabled and not audit_enabled(settings):
        return
    verifier = TokenVerifier(auth) if auth.enabled else None
    guard = AccessGuard(store, auth.break_glass_minutes, auth.facts_cache_seconds) if auth.enabled else None
    writer = None
    if audit_enabled(settings):
        audit = settings.audit
        writer = AuditWriter(
            store,
            queue_size=audit.queue_size,
            batch_size=audit.batch_size,
            flush_interval=audit.flush_interval_seconds,
        )
    app.state.audit_writer = writer
    app.state.access_guard = guard  # for routes outside the FHIR base (DICOMweb proxy)
    app.state.token_verifier = verifier
    introspector = _introspector(settings)
    app.state.token_introspector = introspector  # the DICOMweb gate checks revocation as /fhir does
    if verifier is not None:  # ahead of the generic `/{type}/{id}` routes
        before = len(app.router.routes)
        app.include_router(smart_router(verifier, settings.http.base_path))
        added = app.router.routes[before:]
        del app.router.routes[before:]
        app.router.routes[:0] = added
    app.add_middleware(
        AuthAuditMiddleware,
        base_path=settings.http.base_path,
        verifier=verifier,
        guard=guard,
        writer=writer,
        site=settings.audit.site,
        public_paths=tuple({*auth.public_paths, f"{settings.http.base_path.rstrip('/')}/metadata"}),
        max_body_bytes=settings.http.max_body_bytes,
        introspector=introspector,
    )


def _introspector(settings: HieSettings) -> Introspector | None:
    auth = settings.auth
    if not (auth.enabled and auth.introspection):
        return None
    if not auth.client_secret:
        raise ValueError("auth.introspection needs auth.client_secret (HIE_AUTH__CLIENT_SECRET)")
    assert auth.issuer is not None
    return Introspector(auth.issuer, auth.client_id, auth.client_secret, auth.introspection_cache_seconds)
