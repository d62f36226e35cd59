"""Per-app FHIR context: settings, store, base URL, resource-type checks, unit-of-work runner.

The app holds one `FhirContext` on `app.state.fhir` (set by `create_app`); nothing global.
Store calls are synchronous, so they run in the thread pool, one unit of work per request.

May import: starlette/fastapi, `ehr_store`, `ehr_store.empi`, `hie_server.*`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ehr_store import (
    InvalidInput,
    NotFound,
    NotSupported,
    Store,
    StoredResource,
    UnitOfWork,
    check_resource_type,
)
from ehr_store import check_id as store_check_id
from ehr_store.empi import EmpiService
from hie_server.settings import HieSettings
from hie_server.source_patients import linking_unit_of_work

T = TypeVar("T")

#: Called with (unit of work, work's result) just before a writing unit of work commits; set per
#: request by the audit middleware (hie_server.auth) so a write and its AuditEvent commit together.
before_commit: ContextVar[Callable[[UnitOfWork, object], None] | None] = ContextVar(
    "before_commit", default=None
)

_ETAG = re.compile(r'^\s*(?:W/)?"?(\d+)"?\s*$')


@dataclass(frozen=True)
class FhirContext:
    """What every FHIR route needs: settings and the store; `identity`: the EMPI that links
    source Patients written through the API (`hie_server.source_patients`; None: stored as sent)."""

    settings: HieSettings
    store: Store
    identity: EmpiService | None = None

    def base_url(self, request: Request) -> str:
        """Absolute FHIR base (`public_base_url` or derived from the request), no trailing slash."""
        configured = self.settings.http.public_base_url
        if configured:
            return configured.rstrip("/")
        return str(request.base_url).rstrip("/") + self.settings.http.base_path.rstrip("/")

    async def run(self, work: Callable[[UnitOfWork], T], *, commit: bool = True, inline: bool = False) -> T:
        """Run `work` in one unit of work in the thread pool; commit once when it returns.

        `inline=True` runs it on the event loop instead: only for bounded work (a read by
        primary key, ~0.1 ms), where the thread hop would cost more than the work.
        """

        def in_uow() -> T:
            with self.store.unit_of_work(write=commit) as raw:
                uow = linking_unit_of_work(raw, self.identity) if commit else raw
                result = work(uow)
                if commit:
                    hook = before_commit.get()
                    if hook is not None:
                        hook(uow, result)
                    uow.commit()
                return result

        if inline:
            return in_uow()
        return await run_in_threadpool(in_uow)


async def fhir_context(request: Request) -> FhirContext:
    """FastAPI dependency: the app's FhirContext (async, so it runs without a thread hop)."""
    ctx: FhirContext = request.app.state.fhir
    return ctx


def check_type(resource_type: str) -> str:
    """Return `resource_type` when it is a FHIR R4B resource type.

    Raises: NotFound (404, FHIR R4B http §3.1.0.1.4: an unknown type is an unknown endpoint).
    """
    try:
        check_resource_type(resource_type)
    except NotSupported as exc:
        raise NotFound(exc.diagnostics, issue_code="not-supported") from None
    return resource_type


def check_id(id: str) -> str:
    """Return `id` when it is a valid FHIR id. Raises: InvalidInput (FHIR R4B datatypes §2.24.0.1 id)."""
    store_check_id(id)
    return id


def parse_version(value: str, what: str) -> int:
    """A version from `W/"3"`, `"3"` or `3`. Raises: InvalidInput."""
    match = _ETAG.match(value)
    if not match:
        raise InvalidInput(f'{what} {value!r} is not a version ETag like W/"3"')
    return int(match.group(1))


def http_date(moment: datetime) -> str:
    """RFC 9110 HTTP-date of a timezone-aware datetime."""
    return format_datetime(moment, usegmt=True)


def version_headers(stored: StoredResource, base: str | None = None) -> dict[str, str]:
    """`ETag`, `Last-Modified` and (with `base`) `Location`/`Content-Location` of a version."""
    headers = {"ETag": stored.etag, "Last-Modified": http_date(stored.last_updated)}
    if base is not None:
        location = f"{base}/{stored.resource_type}/{stored.id}/_history/{stored.version_id}"
        headers["Location"] = location
        headers["Content-Location"] = location
    return headers


def check_body_type(resource: dict[str, Any], resource_type: str) -> None:
    """Raises: InvalidInput when the body's resourceType differs from the URL's."""
    if resource.get("resourceType") != resource_type:
        raise InvalidInput(
            f"body resourceType {resource.get('resourceType')!r} does not match the URL's {resource_type}",
            expression=("resourceType",),
        )
