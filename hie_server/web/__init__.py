"""hie_server.web: the clinician workbench (工作台) — server-rendered pages (FastAPI + Jinja2,
a little plain JavaScript, no CDN) at `/workbench`, in Chinese with English available.

Sign-in through the identity provider (OIDC authorisation code flow with PKCE, public client
`hie-workbench`; tokens kept in a server-side session). Every page reads and writes through the
exchange's own HTTP API with the signed-in user's access token (`hie_server.web.api`), so the
same token check, access rules, filtering and AuditEvents apply as for any API client. Without an
identity provider the workbench is open on loopback only, as the local operator (like the API).

Public API: `workbench_router(settings) -> APIRouter` (pass to `create_app(root_routers=[...])`),
`admin_module(ingest, empi, terminology) -> FhirModule` (the admin operations the admin pages use),
`WebSettings`.

May import: fastapi/starlette, jinja2, httpx, matplotlib, `ehr_store`, `ehr_store.empi`,
`terminology`, `adapters`, `hie_server.*`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from hie_server.web.settings import WebSettings


def workbench_router(settings: Any) -> APIRouter:
    """All workbench routes under `/workbench` for an app built with `settings` (HieSettings);
    imported lazily so that `hie_server.settings` can import `WebSettings` without a cycle."""
    from hie_server.web.routes import build_router

    return build_router(settings)


def admin_module(ingest: Any, empi: Any, terminology: Any, timezone: str = "Asia/Shanghai") -> Any:
    """The admin operations (`hie_server.web.admin_ops.admin_module`), imported lazily so that
    `hie_server.settings` can import `WebSettings` without a cycle."""
    from hie_server.web.admin_ops import admin_module as build

    return build(ingest, empi, terminology, timezone)


__all__ = ["WebSettings", "admin_module", "workbench_router"]
