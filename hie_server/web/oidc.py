"""OpenID Connect authorisation code flow with PKCE for the workbench (RFC 6749 §4.1,
RFC 7636 S256, OpenID Connect Core 1.0 §3.1; RP-initiated logout 1.0).

The browser is sent to the issuer's authorization endpoint with `state`, `nonce` and a
`code_challenge`; the callback's code is exchanged on the server (public client, no secret)
with the `code_verifier`; tokens stay on the server. Access tokens are verified by the API's own
`TokenVerifier` whenever they are used, so nothing here trusts a token by itself.

May import: httpx, the standard library.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from ehr_store import Unauthenticated, Unavailable

Json = dict[str, Any]


@dataclass(frozen=True)
class PkceStart:
    """What the callback must match: `state`, `nonce`, the `verifier` and where to go after."""

    state: str
    nonce: str
    verifier: str
    redirect_uri: str
    next_path: str


@dataclass
class Tokens:
    """Tokens of one signed-in session. `expires_at`: epoch seconds of the access token's expiry."""

    access_token: str
    refresh_token: str | None
    id_token: str | None
    expires_at: float

    @classmethod
    def from_response(cls, doc: Json) -> Tokens:
        """Build from a token endpoint answer (RFC 6749 §5.1). Raises: Unauthenticated."""
        if not doc.get("access_token"):
            raise Unauthenticated("the identity provider returned no access token")
        return cls(
            str(doc["access_token"]),
            doc.get("refresh_token"),
            doc.get("id_token"),
            time.time() + float(doc.get("expires_in", 60)),
        )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class OidcClient:
    """The workbench's public client at `issuer` (discovery document fetched once, lazily)."""

    def __init__(self, issuer: str, client_id: str, timeout: float = 5.0) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.timeout = timeout
        self._discovery: Json | None = None

    async def discovery(self) -> Json:
        """`<issuer>/.well-known/openid-configuration`. Raises: Unavailable."""
        if self._discovery is None:
            url = f"{self.issuer}/.well-known/openid-configuration"
            try:
                async with httpx.AsyncClient(timeout=self.timeout) as client:
                    response = await client.get(url)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                raise Unavailable(f"identity provider unreachable: {exc}") from None
            self._discovery = response.json()
        return self._discovery

    async def start(self, redirect_uri: str, next_path: str) -> tuple[str, PkceStart]:
        """The authorization URL to send the browser to, and what the callback must match."""
        doc = await self.discovery()
        verifier = _b64(secrets.token_bytes(48))
        pending = PkceStart(
            _b64(secrets.token_bytes(24)), _b64(secrets.token_bytes(24)), verifier, redirect_uri, next_path
        )
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid profile",
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": _b64(hashlib.sha256(verifier.encode("ascii")).digest()),
            "code_challenge_method": "S256",
        }
        return f"{doc['authorization_endpoint']}?{urlencode(query)}", pending

    async def _token(self, form: dict[str, str]) -> Tokens:
        doc = await self.discovery()
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(
                    doc["token_endpoint"], data={**form, "client_id": self.client_id}
                )
        except httpx.HTTPError as exc:
            raise Unavailable(f"identity provider unreachable: {exc}") from None
        if response.status_code != 200:
            error = response.json().get("error_description", response.text[:200]) if response.content else ""
            raise Unauthenticated(f"sign-in refused by the identity provider: {error}")
        return Tokens.from_response(response.json())

    async def exchange(self, code: str, pending: PkceStart) -> Tokens:
        """Exchange the authorization code (RFC 6749 §4.1.3 with RFC 7636 §4.5 `code_verifier`).
        Raises: Unauthenticated (code refused), Unavailable (issuer unreachable)."""
        return await self._token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": pending.redirect_uri,
                "code_verifier": pending.verifier,
            }
        )

    async def refresh(self, tokens: Tokens) -> Tokens:
        """A fresh access token from the refresh token (RFC 6749 §6). Raises: Unauthenticated."""
        if not tokens.refresh_token:
            raise Unauthenticated("the session expired; sign in again")
        return await self._token({"grant_type": "refresh_token", "refresh_token": tokens.refresh_token})

    async def logout_url(self, tokens: Tokens | None, post_logout_redirect_uri: str) -> str | None:
        """RP-initiated logout URL (`end_session_endpoint`), or None when the issuer has none."""
        doc = await self.discovery()
        endpoint = doc.get("end_session_endpoint")
        if not endpoint:
            return None
        query = {"client_id": self.client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
        if tokens is not None and tokens.id_token:
            query["id_token_hint"] = tokens.id_token
        return f"{endpoint}?{urlencode(query)}"

    async def revoke(self, tokens: Tokens) -> None:
        """End the session at the issuer (refresh token revocation, RFC 7009); errors ignored."""
        doc = await self.discovery()
        endpoint = doc.get("revocation_endpoint")
        if not endpoint or not tokens.refresh_token:
            return
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                await client.post(
                    endpoint,
                    data={
                        "token": tokens.refresh_token,
                        "token_type_hint": "refresh_token",
                        "client_id": self.client_id,
                    },
                )
        except httpx.HTTPError:
            return
