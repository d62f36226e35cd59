"""Settings section of the web workbench (`HIE_WEB__*`).

Frozen pydantic model composed into `HieSettings` by `hie_server.settings`. Nothing here reads
the environment.

May import: pydantic.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class WebSettings(BaseModel):
    """The clinician workbench at `/workbench`. Env: `HIE_WEB__ENABLED`, `HIE_WEB__CLIENT_ID`, ...

    `enabled`: serve the workbench (with `hie serve`).
    `client_id`: the public OIDC client the browser signs in with (PKCE S256, authorization code).
    `session_minutes`: idle lifetime of a server-side session (tokens are kept on the server,
    the browser holds only an opaque cookie).
    `public_base_url`: the workbench's external URL (`https://hie.example.cn`) used for the OIDC
    redirect URI; derived from the request when unset.
    `default_language`: `zh` or `en`.
    """

    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    client_id: str = "hie-workbench"
    session_minutes: int = Field(default=480, ge=5, le=24 * 60)
    public_base_url: str | None = None
    default_language: str = Field(default="zh", pattern="^(zh|en)$")
