"""`GET [base]/metadata`: the CapabilityStatement, generated from what is registered
(FHIR R4B http §3.1.0.12, CapabilityStatement §2.38); also the readiness probe.

Resource types and their search parameters come from the search registry; interactions
are those the routes in this package implement; operations are those modules register.

May import: fastapi/starlette, `ehr_store`, `hie_server.*`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ehr_store import DomainError, Unavailable, json_dumps
from hie_server.auth.smart import smart_configuration
from hie_server.context import FhirContext, fhir_context
from hie_server.formats import fhir_response

router = APIRouter()
Json = dict[str, Any]

TYPE_INTERACTIONS = (
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
)
SYSTEM_INTERACTIONS = ("transaction", "batch", "search-system", "history-system")
COMMON_PARAMS = ("_count", "_offset", "_summary", "_elements", "_total", "_format", "_pretty")
SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


class SearchParamInfo(Protocol):
    """What the CapabilityStatement needs of a search parameter (ehr_store's SearchParamDef)."""

    @property
    def code(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def documentation(self) -> str: ...


@dataclass(frozen=True, slots=True)
class FhirOperation:
    """An operation a module registers: `name` without `$`, its OperationDefinition canonical,
    the resource types it runs on (empty: system level), and optional `documentation`
    (CapabilityStatement.rest.resource.operation.documentation: how this server differs)."""

    name: str
    definition: str
    resource_types: tuple[str, ...] = ()
    documentation: str = ""


@dataclass(frozen=True)
class SearchCatalogue:
    """The resource types served and a function giving each type's search parameters."""

    resource_types: frozenset[str]
    params_for: Callable[[str], Mapping[str, SearchParamInfo]]


@dataclass
class CapabilityCache:
    """The generated statement (built once the store answered `check_schema`)."""

    body: bytes | None = None
    operations: list[FhirOperation] = field(default_factory=list)


def _search_params(params: Mapping[str, SearchParamInfo]) -> list[Json]:
    out = []
    for code in sorted(params):
        p = params[code]
        item: Json = {"name": code, "definition": p.url, "type": p.type}
        if p.documentation:
            item["documentation"] = p.documentation
        out.append(item)
    return out


def _operations(ops: Iterable[FhirOperation], resource_type: str | None) -> list[Json]:
    chosen = [
        op for op in ops if (resource_type in op.resource_types if resource_type else not op.resource_types)
    ]
    out: list[Json] = []
    for op in chosen:
        item: Json = {"name": op.name, "definition": op.definition}
        if op.documentation:
            item["documentation"] = op.documentation
        out.append(item)
    return out


def _resource(resource_type: str, catalogue: SearchCatalogue, ops: Sequence[FhirOperation]) -> Json:
    item: Json = {
        "type": resource_type,
        "interaction": [{"code": c} for c in TYPE_INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "full-support",
        "conditionalUpdate": True,
        "conditionalDelete": "single",
        "searchInclude": ["*"],
        "searchRevInclude": ["*"],
        "searchParam": _search_params(catalogue.params_for(resource_type)),
    }
    operations = _operations(ops, resource_type)
    if operations:
        item["operation"] = operations
    return item


def smart_security(issuer: str, base: str) -> Json:
    """`rest.security` of a server taking SMART-on-FHIR OAuth 2.0 Bearer tokens from `issuer`
    (FHIR R4B CapabilityStatement.rest.security; SMART App Launch 2.1 §2.0.6 oauth-uris).

    The endpoints are those `[base]/.well-known/smart-configuration` publishes without the
    issuer's discovery document (Keycloak's standard paths under `issuer`).
    """
    smart = smart_configuration(issuer)
    uris = (
        ("authorize", "authorization_endpoint"),
        ("token", "token_endpoint"),
        ("introspect", "introspection_endpoint"),
        ("revoke", "revocation_endpoint"),
    )
    return {
        "service": [
            {
                "coding": [{"system": SECURITY_SERVICE, "code": "SMART-on-FHIR"}],
                "text": "OAuth 2.0 Bearer tokens (SMART App Launch 2.1, OpenID Connect)",
            }
        ],
        "description": (
            f"Every request except `metadata` and the SMART configuration needs `Authorization: Bearer "
            f"<token>` issued by {issuer}; endpoints and scopes at {base}/.well-known/smart-configuration"
        ),
        "extension": [
            {
                "url": OAUTH_URIS,
                "extension": [{"url": name, "valueUri": smart[key]} for name, key in uris],
            }
        ],
    }


def capability_statement(
    base: str,
    catalogue: SearchCatalogue,
    ops: Sequence[FhirOperation],
    version: str,
    issuer: str | None = None,
) -> Json:
    """The CapabilityStatement JSON (kind instance, fhirVersion 4.3.0, format json); with an
    OpenID `issuer` configured, `rest.security` describes the SMART-on-FHIR sign-in."""
    rest: Json = {
        "mode": "server",
        "resource": [_resource(t, catalogue, ops) for t in sorted(catalogue.resource_types)],
        "interaction": [{"code": c} for c in SYSTEM_INTERACTIONS],
        "searchParam": [{"name": n, "type": "special" if n != "_count" else "number"} for n in COMMON_PARAMS],
    }
    if issuer:
        rest["security"] = smart_security(issuer, base)
    system_ops = _operations(ops, None)
    if system_ops:
        rest["operation"] = system_ops
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(UTC).date().isoformat(),
        "publisher": "Qingyuan regional health information exchange",
        "kind": "instance",
        "software": {"name": "qingyuan-hie", "version": version},
        "implementation": {"description": "Qingyuan HIE FHIR R4B server", "url": base},
        "fhirVersion": "4.3.0",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [rest],
    }


@router.get("/metadata", summary="capabilities (readiness probe)")
async def metadata(request: Request, ctx: FhirContext = Depends(fhir_context)) -> Response:
    """The CapabilityStatement; 503 until the store is reachable and at the current schema."""
    cache: CapabilityCache = request.app.state.capability
    if cache.body is None:
        try:
            await run_in_threadpool(ctx.store.check_schema)
        except DomainError as exc:
            raise Unavailable(f"not ready: {exc.diagnostics}") from None
        catalogue: SearchCatalogue = request.app.state.search_catalogue
        statement = capability_statement(
            ctx.base_url(request),
            catalogue,
            cache.operations,
            request.app.version,
            issuer=ctx.settings.auth.issuer,
        )
        cache.body = json_dumps(statement)
    return fhir_response(request, cache.body)
