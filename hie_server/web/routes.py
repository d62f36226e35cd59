"""`build_router(settings)`: every workbench route under `/workbench` (one `Workbench` state).

May import: fastapi, `hie_server.settings`, `hie_server.web.*`.
"""

from __future__ import annotations

from fastapi import APIRouter

from hie_server.settings import HieSettings
from hie_server.web.core import Workbench
from hie_server.web.pages_admin import admin_routes
from hie_server.web.pages_auth import auth_routes
from hie_server.web.pages_cdc import cdc_routes
from hie_server.web.pages_resident import resident_routes
from hie_server.web.pages_telemed import telemed_routes


def build_router(settings: HieSettings) -> APIRouter:
    """The workbench's routes for an app built with `settings`."""
    wb = Workbench(settings)
    router = APIRouter(include_in_schema=False)
    for add in (auth_routes, resident_routes, telemed_routes, cdc_routes, admin_routes):
        add(router, wb)
    return router
