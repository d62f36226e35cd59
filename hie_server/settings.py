"""HieSettings: the one settings object, composed from each package's frozen section.

Built only in entry points (`hie_server.cli`) and passed down explicitly; nothing here
reads the environment at import time. Env prefix `HIE_`, nested delimiter `__`
(`HIE_HTTP__PORT=9090`, `HIE_STORE__POOL_SIZE=5`); `HIE_DATABASE_URL` is an alias of
`HIE_STORE__DATABASE_URL` (INTERFACES.md).

May import: pydantic, pydantic-settings, `ehr_store` (its settings section).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters import IngestSettings, MllpSettings
from ehr_store import StoreSettings
from ehr_store.empi import EmpiSettings
from hie_server.auth.settings import AuditSettings, AuthSettings
from hie_server.bulk.settings import BulkSettings
from hie_server.surveillance.settings import SurveillanceSettings
from hie_server.web.settings import WebSettings
from imaging import ImagingSettings
from telemedicine import TelemedicineSettings
from terminology import TerminologySettings

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class HttpSettings(BaseModel):
    """HTTP server and FHIR REST limits. Env: `HIE_HTTP__HOST`, `HIE_HTTP__PORT`, ...

    `max_body_bytes`: request bodies larger than this get 413.
    `max_bundle_entries`: batch/transaction Bundles with more entries get 400.
    `default_page_size`/`max_page_size`: `_count` when absent / its ceiling (larger values are
    clamped, FHIR R4B search §3.1.1.5.6 allows the server to return fewer).
    `public_base_url`: absolute FHIR base used in `fullUrl`, `Location` and paging links
    (e.g. `https://hie.example.cn/fhir`); derived from the request when unset.
    """

    model_config = ConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    base_path: str = "/fhir"
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_bundle_entries: int = Field(default=1000, ge=1)
    default_page_size: int = Field(default=20, ge=1)
    max_page_size: int = Field(default=1000, ge=1)
    public_base_url: str | None = None


class HieSettings(BaseSettings):
    """All settings of `hie serve` and the other commands.

    Sections: `store` (ehr_store.StoreSettings), `http` (HttpSettings). Further packages add
    their section here with one line each.
    """

    model_config = SettingsConfigDict(
        env_prefix="HIE_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    database_url: str | None = Field(
        default=None, exclude=True, description="Alias of store.database_url (HIE_DATABASE_URL)"
    )
    store: StoreSettings = Field(default_factory=StoreSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    mllp: MllpSettings = Field(default_factory=MllpSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    terminology: TerminologySettings = Field(default_factory=TerminologySettings)
    empi: EmpiSettings = Field(default_factory=EmpiSettings)
    telemedicine: TelemedicineSettings = Field(default_factory=TelemedicineSettings)
    imaging: ImagingSettings = Field(default_factory=ImagingSettings)
    bulk: BulkSettings = Field(default_factory=BulkSettings)
    surveillance: SurveillanceSettings = Field(default_factory=SurveillanceSettings)
    web: WebSettings = Field(default_factory=WebSettings)

    @model_validator(mode="before")
    @classmethod
    def _database_url_alias(cls, data: Any) -> Any:
        """Move top-level `database_url` (HIE_DATABASE_URL) into `store` unless set there."""
        if not isinstance(data, dict) or not data.get("database_url"):
            return data
        store = data.get("store")
        if isinstance(store, StoreSettings):
            store = store.model_dump()
        store = dict(store or {})
        store.setdefault("database_url", data["database_url"])
        return {**data, "store": store}


def with_overrides(
    settings: HieSettings,
    *,
    host: str | None = None,
    port: int | None = None,
    database_url: str | None = None,
) -> HieSettings:
    """Return `settings` with command-line flags applied (flags win over `HIE_*`)."""
    http = settings.http.model_copy(
        update={k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    )
    store = settings.store
    if database_url is not None:
        store = store.model_copy(update={"database_url": database_url})
    return settings.model_copy(update={"http": http, "store": store})
