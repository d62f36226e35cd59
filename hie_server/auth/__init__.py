"""hie_server.auth: sign-in (OIDC Bearer tokens from Keycloak), access rules, audit.

Public API (import from here): `AuthSettings`, `AuditSettings`, `Principal`,
`principal_from_claims`, `TokenVerifier`, `bearer_token`, the policy (`Action`, `Decision`,
`ResidentFacts`, `authorize`, `resident_decision`, `resource_visible`, `write_decision`),
`AccessRecord`, `audit_event`, `AuditWriter`, `smart_configuration`, `scope_allows`.
The app wiring is `hie_server.auth.install.install(app, settings, store)` (imported by
`create_app`; not re-exported here to keep `hie_server.settings` free of import cycles).

May import: PyJWT, httpx, python-keycloak (only in `keycloak_admin`), starlette, `ehr_store`.
"""

from hie_server.auth.audit import AccessRecord, AuditWriter, audit_event
from hie_server.auth.policy import (
    Action,
    Decision,
    ResidentFacts,
    authorize,
    resident_decision,
    resource_visible,
    write_decision,
)
from hie_server.auth.principal import Principal, principal_from_claims
from hie_server.auth.settings import AuditSettings, AuthSettings
from hie_server.auth.smart import scope_allows, smart_configuration
from hie_server.auth.tokens import TokenVerifier, bearer_token

__all__ = [
    "AccessRecord",
    "Action",
    "AuditSettings",
    "AuditWriter",
    "AuthSettings",
    "Decision",
    "Principal",
    "ResidentFacts",
    "TokenVerifier",
    "audit_event",
    "authorize",
    "bearer_token",
    "principal_from_claims",
    "resident_decision",
    "resource_visible",
    "scope_allows",
    "smart_configuration",
    "write_decision",
]
