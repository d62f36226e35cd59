"""Settings sections of authentication (`HIE_AUTH__*`) and audit (`HIE_AUDIT__*`).

Frozen pydantic models composed into `HieSettings` by `hie_server.settings`. Nothing here
reads the environment.

May import: pydantic.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class AuthSettings(BaseModel):
    """OpenID Connect token verification. Env: `HIE_AUTH__ISSUER`, `HIE_AUTH__AUDIENCE`, ...

    `issuer`: the realm URL (`https://sso.example.cn/realms/qingyuan`); unset means no identity
    provider (the server then serves only on loopback, unauthenticated).
    `audience`: the API client id that must appear in `aud` (or be `azp`).
    `clock_skew_seconds`: leeway for `exp`/`nbf`/`iat`.
    `jwks_min_refresh_seconds`: an unknown `kid` refetches the JWKS at most this often.
    `jwks_max_age_seconds`: cached keys are refetched in the background after this age.
    `introspection`: also ask the issuer's introspection endpoint (revocation-sensitive
    deployments; one HTTP round trip per request, cached `introspection_cache_seconds`).
    `client_id`/`client_secret`: the API client's credentials for introspection and
    `hie keycloak provision` (secret never logged).
    `break_glass_minutes`: how long a recorded break-glass reason opens a resident's record.
    `facts_cache_seconds`: how long what the rules know of a resident (registrations, referrals,
    consents) is reused; writes through the API to Patient/Consent/ServiceRequest clear it.
    `mllp_certificates`: MLLP client certificate name (subject CN, or a subjectAltName DNS,
    URI or email value) -> the facility code (MSH-4.1) that connection writes as; a SAN URI
    `urn:qyhie:facility:<code>` names its facility without an entry.
    `mllp_plain`: with an issuer, what an MLLP connection without a verified client
    certificate may send: `refuse` (default; every message AR), `loopback` (only from
    127.0.0.1/::1, e.g. a local interface engine), `any`. Without an issuer everything is
    accepted (the loopback demo), except that a mapped certificate is still held to its facility.
    """

    model_config = ConfigDict(frozen=True)

    issuer: str | None = None
    audience: str = "hie-api"
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    clock_skew_seconds: int = Field(default=30, ge=0, le=300)
    jwks_min_refresh_seconds: float = Field(default=30.0, ge=0)
    jwks_max_age_seconds: float = Field(default=3600.0, ge=60)
    http_timeout_seconds: float = Field(default=5.0, gt=0)
    introspection: bool = False
    introspection_cache_seconds: float = Field(default=0.0, ge=0)
    client_id: str = "hie-api"
    client_secret: str | None = Field(default=None, repr=False)
    break_glass_minutes: int = Field(default=60, ge=1, le=24 * 60)
    facts_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    public_paths: tuple[str, ...] = ("/fhir/metadata", "/fhir/.well-known/", "/.well-known/")
    mllp_certificates: dict[str, str] = Field(default_factory=dict)
    mllp_plain: Literal["refuse", "loopback", "any"] = "refuse"

    @property
    def enabled(self) -> bool:
        """True when an identity provider is configured."""
        return bool(self.issuer)


class AuditSettings(BaseModel):
    """AuditEvent recording. Env: `HIE_AUDIT__ENABLED`, ...

    `enabled`: None (default) records when an identity provider is configured; True/False force it.
    Reads are queued (at most `queue_size` events; a full queue makes the request wait, never
    drops) and written in batches of up to `batch_size` every `flush_interval_seconds`.
    `site`: `AuditEvent.source.site`.
    """

    model_config = ConfigDict(frozen=True)

    enabled: bool | None = None
    queue_size: int = Field(default=10_000, ge=10)
    batch_size: int = Field(default=200, ge=1)
    flush_interval_seconds: float = Field(default=0.05, gt=0)
    site: str = "qingyuan-hie"
