"""Who is calling: the `Principal` built from a verified access token's claims.

Keycloak claim shape: `sub`, `preferred_username`, `azp` (client), `realm_access.roles`,
`resource_access.<api client>.roles` (fine-grained client roles), `scope` (space separated),
and the realm's user-attribute mappers `facility` and `county`.

May import: the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ROLES = (
    "village-doctor",
    "township-doctor",
    "specialist",
    "cdc-staff",
    "clinic-feed",
    "hie-admin",
    "cdc-identified",
)
IDENTIFIED_ROLE = "cdc-identified"  # CDC staff who may receive identified extracts (hie_server.surveillance)
DOCTOR_ROLES = frozenset({"village-doctor", "township-doctor"})
CITY_COUNTY = "4418"  # GB/T 2260 prefix of 清远市: a CDC user at city level sees every county


@dataclass(frozen=True)
class Principal:
    """A verified caller. `roles` are realm roles plus the API client's roles."""

    subject: str
    username: str
    client_id: str
    roles: frozenset[str]
    scopes: frozenset[str] = frozenset()
    facility: str | None = None
    county: str | None = None
    token_id: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def has(self, *roles: str) -> bool:
        """True when the principal holds any of `roles`."""
        return any(r in self.roles for r in roles)

    @property
    def is_admin(self) -> bool:
        return "hie-admin" in self.roles

    @property
    def role_label(self) -> str:
        """The principal's HIE roles joined by ',' (for audit), or '-'."""
        return ",".join(sorted(r for r in self.roles if r in ROLES)) or "-"

    @property
    def display(self) -> str:
        """`username@facility` (facility omitted when absent)."""
        return f"{self.username}@{self.facility}" if self.facility else self.username


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def principal_from_claims(claims: Mapping[str, Any], api_client: str) -> Principal:
    """Build a Principal from verified claims (Keycloak shape, see module docstring)."""
    roles = set(_strings(claims.get("realm_access", {}).get("roles")))
    resource_access = claims.get("resource_access") or {}
    if isinstance(resource_access, Mapping):
        roles.update(_strings((resource_access.get(api_client) or {}).get("roles")))
    scope = claims.get("scope")
    scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset(_strings(scope))
    client = str(claims.get("azp") or claims.get("client_id") or "")
    username = str(claims.get("preferred_username") or claims.get("client_id") or claims.get("sub") or "")
    facility = claims.get("facility")
    county = claims.get("county")
    return Principal(
        subject=str(claims.get("sub") or ""),
        username=username,
        client_id=client,
        roles=frozenset(roles),
        scopes=scopes,
        facility=str(facility) if facility else None,
        county=str(county) if county else None,
        token_id=str(claims["jti"]) if claims.get("jti") else None,
        claims=dict(claims),
    )
