"""SMART App Launch scopes (v2 `patient/*.rs`, `user/Observation.cruds`; v1 `.read`/`.write`/`.*`)
and the `/.well-known/smart-configuration` document (SMART App Launch 2.1 §2.0.6, §3.0.2).

Scopes narrow what a token may do on top of its roles: a token that carries any resource scope
may do only what one of them grants; a token without resource scopes is limited by its roles
alone. Without a launch context `patient/` scopes grant like `user/` scopes (the resident rules
still apply).

May import: the standard library.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_SCOPE = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.(read|write|\*|[cruds]+)(?:\?.*)?$")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
INTERACTION_LETTER = {
    "read": "r",
    "vread": "r",
    "history": "r",
    "everything": "r",
    "operation-read": "r",
    "search": "s",
    "create": "c",
    "hl7v2": "c",
    "update": "u",
    "patch": "u",
    "operation-write": "u",
    "delete": "d",
}


@dataclass(frozen=True, slots=True)
class ResourceScope:
    """One resource scope: context (`patient`/`user`/`system`), type (`*` = any), letters of `cruds`."""

    context: str
    resource_type: str
    letters: frozenset[str]

    def grants(self, resource_type: str | None, letter: str) -> bool:
        return letter in self.letters and self.resource_type in ("*", resource_type or "*")


def parse_scopes(scopes: Iterable[str]) -> list[ResourceScope]:
    """The resource scopes among `scopes` (others such as `openid`, `profile` are ignored)."""
    found = []
    for scope in scopes:
        match = _SCOPE.match(scope)
        if match:
            context, rtype, perm = match.groups()
            found.append(ResourceScope(context, rtype, frozenset(_V1.get(perm, perm))))
    return found


def scope_allows(scopes: Iterable[str], resource_type: str | None, interaction: str) -> bool:
    """True when the token's scopes permit `interaction` on `resource_type`.

    A token without any resource scope is not narrowed (True). `interaction` is one of the keys
    of INTERACTION_LETTER; `transaction` needs `c` or `u` (entries are checked one by one).
    """
    parsed = parse_scopes(scopes)
    if not parsed:
        return True
    if interaction == "transaction":
        return any(s.grants(resource_type, "c") or s.grants(resource_type, "u") for s in parsed)
    letter = INTERACTION_LETTER.get(interaction)
    if letter is None:
        return True
    return any(s.grants(resource_type, letter) for s in parsed)


SUPPORTED_SCOPES = (
    "openid",
    "profile",
    "offline_access",
    "patient/*.rs",
    "user/*.rs",
    "user/*.cruds",
    "system/*.rs",
    "system/*.cruds",
    "patient/*.read",
    "user/*.read",
    "user/*.write",
    "system/*.read",
    "system/*.write",
)


def smart_configuration(issuer: str, discovery: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `.well-known/smart-configuration` JSON (SMART App Launch 2.1 §2.0.6) for `issuer`.

    Endpoints come from the issuer's OpenID discovery document when given, else Keycloak's
    standard paths under `issuer`.
    """
    oidc = f"{issuer.rstrip('/')}/protocol/openid-connect"
    doc = discovery or {}
    return {
        "issuer": issuer,
        "jwks_uri": doc.get("jwks_uri", f"{oidc}/certs"),
        "authorization_endpoint": doc.get("authorization_endpoint", f"{oidc}/auth"),
        "token_endpoint": doc.get("token_endpoint", f"{oidc}/token"),
        "introspection_endpoint": doc.get("introspection_endpoint", f"{oidc}/token/introspect"),
        "revocation_endpoint": doc.get("revocation_endpoint", f"{oidc}/revoke"),
        "grant_types_supported": ["authorization_code", "client_credentials", "password"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        "scopes_supported": list(SUPPORTED_SCOPES),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": [
            "sso-openid-connect",
            "client-public",
            "client-confidential-symmetric",
            "client-confidential-asymmetric",
            "context-standalone-patient",
            "permission-v1",
            "permission-v2",
            "permission-user",
            "permission-patient",
        ],
    }
