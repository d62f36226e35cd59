"""Everything that talks to Keycloak, through python-keycloak (the only module that imports it).

- `split_issuer(issuer)`: `https://sso/realms/qingyuan` -> (`https://sso`, `qingyuan`).
- `discover(issuer)`: the realm's OpenID configuration (`KeycloakOpenID.well_known`).
- `login(issuer, client_id, ...)`: tokens from the token endpoint (password grant for `hie-cli`,
  client credentials for feed clients); never used to *verify* tokens (see `tokens`).
- `introspect(...)`: RFC 7662 token introspection for revocation-sensitive deployments.
- `provision(server_url, admin_user, admin_password, realm_doc, demo_users=...)`: create or update
  the realm, its roles, client scopes and mappers, clients, feed service accounts and (optionally)
  demo users from the versioned realm description `docker/keycloak/qingyuan-realm.json`.
  Idempotent: existing objects are updated in place; passwords and client secrets of existing
  users/clients are left alone.

May import: python-keycloak, `ehr_store` (error kinds).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from keycloak import KeycloakAdmin, KeycloakOpenID
from keycloak.exceptions import KeycloakError

from ehr_store import Unauthenticated, Unavailable

Json = dict[str, Any]
_NESTED = ("protocolMappers", "defaultClientScopes", "optionalClientScopes")


def split_issuer(issuer: str) -> tuple[str, str]:
    """(server URL, realm) of a Keycloak issuer URL. Raises: ValueError when not `.../realms/<name>`."""
    base, marker, realm = issuer.rstrip("/").rpartition("/realms/")
    if not marker or not realm or "/" in realm:
        raise ValueError(f"{issuer!r} is not a Keycloak realm URL (…/realms/<realm>)")
    return base, realm


def _openid(issuer: str, client_id: str, secret: str | None = None) -> KeycloakOpenID:
    server, realm = split_issuer(issuer)
    return KeycloakOpenID(server_url=server, realm_name=realm, client_id=client_id, client_secret_key=secret)


def discover(issuer: str) -> Json:
    """The realm's `.well-known/openid-configuration`. Raises: Unavailable."""
    try:
        doc: Json = _openid(issuer, "hie-cli").well_known()
    except KeycloakError as exc:
        raise Unavailable(f"Keycloak discovery failed: {exc.response_code}") from None
    return doc


def login(
    issuer: str,
    client_id: str,
    *,
    username: str | None = None,
    password: str | None = None,
    client_secret: str | None = None,
    scope: str = "openid",
) -> Json:
    """Tokens (`access_token`, `expires_in`, `refresh_token`, ...) from the realm's token endpoint.

    With `client_secret` and no username: client credentials grant (feed clients); else the
    resource-owner password grant (`hie-cli`, direct access grants enabled).
    Raises: Unauthenticated (refused), Unavailable (unreachable).
    """
    oidc = _openid(issuer, client_id, client_secret)
    try:
        if username is None:
            tokens: Json = oidc.token(grant_type="client_credentials", scope=scope)
        else:
            tokens = oidc.token(username=username, password=password or "", scope=scope)
    except KeycloakError as exc:
        if exc.response_code in (400, 401, 403):
            raise Unauthenticated(f"Keycloak refused the login ({exc.response_code})") from None
        raise Unavailable(f"Keycloak token endpoint failed ({exc.response_code})") from None
    return tokens


def introspect(issuer: str, client_id: str, client_secret: str, token: str) -> bool:
    """True when the issuer says the token is active (RFC 7662 §2.2). Raises: Unavailable."""
    try:
        answer = _openid(issuer, client_id, client_secret).introspect(token)
    except KeycloakError as exc:
        raise Unavailable(f"token introspection failed ({exc.response_code})") from None
    return bool(isinstance(answer, dict) and answer.get("active"))


@dataclass
class ProvisionReport:
    """What `provision` did, by kind: names created and updated."""

    realm: str
    created: dict[str, list[str]] = field(default_factory=dict)
    updated: dict[str, list[str]] = field(default_factory=dict)

    def note(self, kind: str, name: str, created: bool) -> None:
        (self.created if created else self.updated).setdefault(kind, []).append(name)


def _flat(doc: Json) -> Json:
    return {k: v for k, v in doc.items() if not isinstance(v, list | dict)}


def _sync_mappers(existing: list[Json], wanted: list[Json], add: Any, update: Any) -> None:
    by_name = {m["name"]: m for m in existing}
    for mapper in wanted:
        found = by_name.get(mapper["name"])
        if found is None:
            add(mapper)
        else:
            update(found["id"], {**mapper, "id": found["id"]})


def _client_scopes(kc: KeycloakAdmin, doc: Json, report: ProvisionReport) -> dict[str, str]:
    for scope in doc.get("clientScopes", []):
        found = kc.get_client_scope_by_name(scope["name"])
        if found is None:
            kc.create_client_scope(scope)
            report.note("client scope", scope["name"], True)
            continue
        sid = found["id"]
        kc.update_client_scope(sid, {**{k: v for k, v in scope.items() if k != "protocolMappers"}, "id": sid})
        _sync_mappers(
            kc.get_mappers_from_client_scope(sid),
            scope.get("protocolMappers", []),
            lambda m, s=sid: kc.add_mapper_to_client_scope(s, m),
            lambda mid, m, s=sid: kc.update_mapper_in_client_scope(s, mid, m),
        )
        report.note("client scope", scope["name"], False)
    ids = {s["name"]: s["id"] for s in kc.get_client_scopes()}
    default = {s["name"] for s in kc.get_default_default_client_scopes()}
    for name in doc.get("defaultDefaultClientScopes", []):
        if name not in default and name in ids:
            kc.add_default_default_client_scope(ids[name])
    return ids


def _clients(
    kc: KeycloakAdmin, doc: Json, scope_ids: dict[str, str], demo: bool, report: ProvisionReport
) -> None:
    for client in doc.get("clients", []):
        payload = dict(client) if demo else {k: v for k, v in client.items() if k != "secret"}
        uuid = kc.get_client_id(client["clientId"])
        created = uuid is None
        if uuid is None:
            kc.create_client(payload)
            uuid = kc.get_client_id(client["clientId"])
        else:
            kc.update_client(uuid, {k: v for k, v in payload.items() if k not in (*_NESTED, "secret")})
            _sync_mappers(
                kc.get_mappers_from_client(uuid),
                client.get("protocolMappers", []),
                lambda m, c=uuid: kc.add_mapper_to_client(c, m),
                lambda mid, m, c=uuid: kc.update_client_mapper(c, mid, m),
            )
        assert uuid is not None
        have_default = {s["name"] for s in kc.get_client_default_client_scopes(uuid)}
        for name in client.get("defaultClientScopes", []):
            if name not in have_default and name in scope_ids:
                kc.add_client_default_client_scope(uuid, scope_ids[name], {})
        have_optional = {s["name"] for s in kc.get_client_optional_client_scopes(uuid)}
        for name in client.get("optionalClientScopes", []):
            if name not in have_optional and name in scope_ids:
                kc.add_client_optional_client_scope(uuid, scope_ids[name], {})
        report.note("client", client["clientId"], created)


def _users(kc: KeycloakAdmin, doc: Json, demo: bool, report: ProvisionReport) -> None:
    for user in doc.get("users", []):
        roles = [kc.get_realm_role(r) for r in user.get("realmRoles", [])]
        if user.get("serviceAccountClientId"):
            uuid = kc.get_client_id(user["serviceAccountClientId"])
            if uuid is None:
                continue
            account = kc.get_client_service_account_user(uuid)
            kc.assign_realm_roles(account["id"], roles)
            report.note("service account", user["serviceAccountClientId"], False)
            continue
        if not demo:
            continue
        found = kc.get_users({"username": user["username"], "exact": True})
        if found:
            uid = found[0]["id"]
            kc.update_user(uid, {k: v for k, v in user.items() if k not in ("credentials", "realmRoles")})
        else:
            uid = kc.create_user({k: v for k, v in user.items() if k != "realmRoles"})
        kc.assign_realm_roles(uid, roles)
        report.note("user", user["username"], not found)


def provision(
    server_url: str,
    admin_user: str,
    admin_password: str,
    doc: Json,
    *,
    demo_users: bool = True,
    admin_realm: str = "master",
) -> ProvisionReport:
    """Create or update the realm described by `doc` (see module docstring).

    Raises: Unauthenticated (admin login refused), Unavailable (Keycloak unreachable or an
    admin call failed; the message names the HTTP status).
    """
    realm = doc["realm"]
    report = ProvisionReport(realm)
    try:
        kc = KeycloakAdmin(
            server_url=server_url,
            username=admin_user,
            password=admin_password,
            realm_name=admin_realm,
            user_realm_name=admin_realm,
        )
        if realm not in {r["realm"] for r in kc.get_realms()}:
            payload = dict(doc)
            if not demo_users:
                payload["users"] = [u for u in doc.get("users", []) if u.get("serviceAccountClientId")]
                payload["clients"] = [
                    {k: v for k, v in c.items() if k != "secret"} for c in doc.get("clients", [])
                ]
            kc.create_realm(payload)
            report.note("realm", realm, True)
            return report
        kc.change_current_realm(realm)
        kc.update_realm(realm, _flat(doc))
        report.note("realm", realm, False)
        for component in doc.get("components", {}).get("org.keycloak.userprofile.UserProfileProvider", []):
            kc.update_realm_users_profile(json.loads(component["config"]["kc.user.profile.config"][0]))
        for role in doc.get("roles", {}).get("realm", []):
            kc.create_realm_role(role, skip_exists=True)
            kc.update_realm_role(role["name"], role)
            report.note("role", role["name"], False)
        _clients(kc, doc, _client_scopes(kc, doc, report), demo_users, report)
        _users(kc, doc, demo_users, report)
    except KeycloakError as exc:
        if exc.response_code == 401:
            raise Unauthenticated("Keycloak refused the admin login") from None
        raise Unavailable(
            f"Keycloak admin call failed ({exc.response_code}): {exc.error_message!r:.200}"
        ) from None
    return report


class Introspector:
    """RFC 7662 introspection with a short cache (`introspection_cache_seconds`, 0 = ask every time)."""

    def __init__(self, issuer: str, client_id: str, client_secret: str, cache_seconds: float) -> None:
        self.issuer, self.client_id, self.client_secret = issuer, client_id, client_secret
        self.cache_seconds = cache_seconds
        self._seen: dict[str, tuple[float, bool]] = {}

    def active(self, token: str) -> bool:
        """True when the issuer says the token is active. Raises: Unavailable."""
        import time

        now = time.monotonic()
        cached = self._seen.get(token)
        if cached is not None and cached[0] > now:
            return cached[1]
        answer = introspect(self.issuer, self.client_id, self.client_secret, token)
        if self.cache_seconds > 0:
            if len(self._seen) > 10_000:
                self._seen.clear()
            self._seen[token] = (now + self.cache_seconds, answer)
        return answer
