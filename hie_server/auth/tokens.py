"""Bearer access-token verification against the issuer's JWKS (RFC 7519, RFC 7517, OIDC Discovery 1.0).

`TokenVerifier.verify(token) -> Principal` checks, locally and without a network call on
the hot path: the JWS algorithm (RS256/ES256 only: `none` and HS* are refused before any key
is looked at, so an HS256 token "signed" with the public key never verifies), the signature
with the key named by `kid`, `iss` exactly, `aud` containing the API client (or `azp` equal to
it), `exp`/`nbf`/`iat` with `clock_skew_seconds`, and `typ` = `Bearer` (Keycloak's access
tokens; ID and refresh tokens are refused).

Keys come from the JWKS discovered through `<issuer>/.well-known/openid-configuration`, cached;
an unknown `kid` refetches it at most every `jwks_min_refresh_seconds` (key rotation), keys
older than `jwks_max_age_seconds` are refetched on the next miss-or-expiry. Thread-safe.

May import: PyJWT, httpx, `ehr_store` (error kinds), `hie_server.auth.*`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import jwt
from jwt import PyJWK

from ehr_store import Unauthenticated, Unavailable
from hie_server.auth.principal import Principal, principal_from_claims
from hie_server.auth.settings import AuthSettings

Json = dict[str, Any]
Fetch = Callable[[str], Json]


def http_fetch(timeout: float) -> Fetch:
    """A JSON GET with `timeout` seconds. Raises: Unavailable (network error, non-200)."""

    def fetch(url: str) -> Json:
        try:
            response = httpx.get(url, timeout=timeout, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise Unavailable(f"identity provider unreachable: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise Unavailable(f"identity provider answered {response.status_code} for {url}")
        data = response.json()
        if not isinstance(data, dict):
            raise Unavailable(f"identity provider sent no JSON object for {url}")
        return data

    return fetch


class JwksCache:
    """The issuer's signing keys by `kid`, refreshed on an unknown `kid` (rate-limited)."""

    def __init__(self, issuer: str, settings: AuthSettings, fetch: Fetch) -> None:
        self.issuer = issuer.rstrip("/")
        self.settings = settings
        self.fetch = fetch
        self._lock = threading.Lock()
        self._keys: dict[str, PyJWK] = {}
        self._jwks_uri: str | None = None
        self._fetched_at = float("-inf")
        self.fetches = 0

    def discovery(self) -> Json:
        """The issuer's OpenID configuration. Raises: Unavailable, Unauthenticated (issuer mismatch)."""
        doc = self.fetch(f"{self.issuer}/.well-known/openid-configuration")
        if str(doc.get("issuer", "")).rstrip("/") != self.issuer:
            raise Unavailable(f"discovery document names issuer {doc.get('issuer')!r}, not {self.issuer!r}")
        return doc

    def _refresh(self) -> None:
        if self._jwks_uri is None:
            self._jwks_uri = str(self.discovery()["jwks_uri"])
        jwks = self.fetch(self._jwks_uri)
        keys: dict[str, PyJWK] = {}
        for jwk in jwks.get("keys", []):
            if jwk.get("use", "sig") != "sig" or jwk.get("alg") not in (None, *self.settings.algorithms):
                continue
            try:
                keys[str(jwk.get("kid", ""))] = PyJWK(jwk)
            except jwt.PyJWTError:
                continue  # a key type we do not use (e.g. RSA-OAEP encryption keys)
        self._keys = keys
        self._fetched_at = time.monotonic()
        self.fetches += 1

    def has(self, kid: str) -> bool:
        """True when `kid` is cached and the cache is not older than `jwks_max_age_seconds`."""
        fresh = time.monotonic() - self._fetched_at < self.settings.jwks_max_age_seconds
        return fresh and kid in self._keys

    def key(self, kid: str) -> PyJWK:
        """The key for `kid`, refetching the JWKS when unknown (at most every min-refresh seconds).

        Raises: Unauthenticated (still unknown), Unavailable (issuer unreachable).
        """
        if self.has(kid):
            return self._keys[kid]
        with self._lock:
            age = time.monotonic() - self._fetched_at
            if not self.has(kid) and (
                age >= self.settings.jwks_min_refresh_seconds or age >= self.settings.jwks_max_age_seconds
            ):
                self._refresh()
            found = self._keys.get(kid)
        if found is None:
            raise Unauthenticated(f"token signed with an unknown key (kid {kid[:40]!r})")
        return found


class TokenVerifier:
    """Verifies Bearer access tokens of one issuer for one API audience."""

    def __init__(self, settings: AuthSettings, fetch: Fetch | None = None) -> None:
        if not settings.issuer:
            raise ValueError("TokenVerifier needs settings.issuer")
        self.settings = settings
        self.issuer = settings.issuer.rstrip("/")
        self.jwks = JwksCache(self.issuer, settings, fetch or http_fetch(settings.http_timeout_seconds))

    def header(self, token: str) -> Mapping[str, Any]:
        """The JOSE header, after checking `alg` is allowed. Raises: Unauthenticated."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is not a JWS compact serialisation") from None
        alg = header.get("alg")
        if alg not in self.settings.algorithms:
            raise Unauthenticated(
                f"token algorithm {alg!r} is not accepted (only {', '.join(self.settings.algorithms)})"
            )
        return header

    def needs_fetch(self, token: str) -> bool:
        """True when verifying `token` would fetch keys (unknown `kid`): call `verify` off the loop."""
        try:
            return not self.jwks.has(str(self.header(token).get("kid", "")))
        except Unauthenticated:
            return False

    def verify(self, token: str) -> Principal:
        """Verify `token` and return its Principal (RFC 7519 §7.2, OIDC Core §3.1.3.7 checks).

        Raises: Unauthenticated (naming the check that failed), Unavailable (issuer unreachable
        while keys had to be fetched).
        """
        header = self.header(token)
        key = self.jwks.key(str(header.get("kid", "")))
        if key.algorithm_name != header["alg"] and key.algorithm_name in self.settings.algorithms:
            raise Unauthenticated("token algorithm does not match its key")
        try:
            claims: Json = jwt.decode(
                token,
                key.key,
                algorithms=[str(header["alg"])],
                issuer=self.issuer,
                leeway=self.settings.clock_skew_seconds,
                options={"verify_aud": False, "require": ["exp", "iat", "iss", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the token is not yet valid (nbf/iat in the future)") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the token was issued by another issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"the token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("the token signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the token is invalid: {type(exc).__name__}") from None
        self.check_claims(claims)
        return principal_from_claims(claims, self.settings.audience)

    def check_claims(self, claims: Mapping[str, Any]) -> None:
        """`aud`/`azp` names the API client; `typ` is Bearer. Raises: Unauthenticated."""
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else list(aud or [])
        if self.settings.audience not in audiences and claims.get("azp") != self.settings.audience:
            raise Unauthenticated(f"the token is not meant for {self.settings.audience!r} (aud/azp)")
        typ = claims.get("typ")
        if typ is not None and str(typ).lower() != "bearer":
            raise Unauthenticated(f"a {typ!r} token is not an access token")


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1). Raises: Unauthenticated."""
    if not authorization:
        raise Unauthenticated("this endpoint needs an `Authorization: Bearer` access token")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be `Bearer <token>`")
    return token.strip()
