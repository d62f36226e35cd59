"""HieSettings: the one settings object, composed from each package's frozen section.

Built only in entry points (`hie_server.cli`) and passed down explicitly; nothing here
reads the environment at import time. Env prefix `HIE_`, nested delimiter `__`
(`HIE_HTTP__PORT=9090`, `HIE_STORE__POOL_SIZE=5`); `HIE_DATABASE_URL` is an alias of
`HIE_STORE__DATABASE_URL` (INTERFACES.md).

May import: pydantic, pydantic-settings, `ehr_store` (its settings section).
"""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretBytes, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

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


SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "KEY")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@/\s]*@")
_SETTINGS_FIELD = re.compile(r'for field "([^"]+)"')


class InvalidSettings(ValueError):
    """`HIE_*` settings that do not validate; `problems` holds one line per bad variable,
    e.g. `invalid setting HIE_MLLP__PROCESSES=0: Input should be greater than or equal to 1`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


def settings_from_env() -> HieSettings:
    """Build HieSettings from `HIE_*`; the one way entry points read the environment.

    Raises: InvalidSettings naming each bad variable (`HIE_` + `__`-joined upper-cased field path)
    and the reason; values of secret fields (SecretStr, or a name with PASSWORD/SECRET/TOKEN/KEY)
    and passwords inside URLs are never included.
    """
    try:
        return HieSettings()
    except ValidationError as exc:
        raise InvalidSettings([_problem(error) for error in exc.errors()]) from None
    except SettingsError as exc:  # a complex value (section, list, dict) that is not JSON
        raise InvalidSettings([_parse_problem(exc, os.environ)]) from None


def env_name(loc: tuple[int | str, ...]) -> tuple[str, bool]:
    """The variable of a validation error location, and whether its value is secret.

    `("mllp", "processes")` -> `("HIE_MLLP__PROCESSES", False)`; the path follows model fields
    only (list indexes, dict keys and union tags below a field stay in its JSON value, so they
    are shown as `[0]`/`[key]`).
    """
    config = HieSettings.model_config
    prefix, delimiter = config.get("env_prefix", ""), config.get("env_nested_delimiter") or "__"
    model: type[BaseModel] | None = HieSettings
    names: list[str] = []
    inner = ""
    secret = False
    for part in loc:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            inner += f"[{part}]"
            model = None
            continue
        field = model.model_fields[part]
        names.append(part.upper())
        types = _types(field.annotation)
        secret = secret or any(issubclass(t, (SecretStr, SecretBytes)) for t in types)
        model = next((t for t in types if issubclass(t, BaseModel)), None)
    secret = secret or any(word in name for name in names for word in SECRET_WORDS)
    return prefix.upper() + delimiter.join(names) + inner, secret


def _types(annotation: Any) -> list[type]:
    """The classes in `annotation` (unions and Optional unpacked)."""
    if isinstance(annotation, type):
        return [annotation]
    return [t for arg in typing.get_args(annotation) for t in _types(arg)]


def _problem(error: Any) -> str:
    """One line for one pydantic error dict: variable, value unless secret, reason."""
    if not error["loc"]:
        return f"invalid settings: {error['msg']}"
    name, secret = env_name(tuple(error["loc"]))
    value = error.get("input")
    shown = ""
    if not secret and isinstance(value, str | int | float | bool):
        shown = "=" + _URL_PASSWORD.sub(r"\1***@", str(value))
    return f"invalid setting {name}{shown}: {error['msg']}"


def _parse_problem(exc: SettingsError, environ: Mapping[str, str]) -> str:
    """One line for a value pydantic-settings could not parse (JSON of a section, list or dict)."""
    found = _SETTINGS_FIELD.search(str(exc))
    reason = f"not valid JSON ({exc.__cause__})" if exc.__cause__ is not None else str(exc)
    if found is None:
        return f"invalid settings: {reason}"
    name = env_name((found.group(1),))[0]
    present = sorted(k.upper() for k in environ if k.upper() == name or k.upper().startswith(name + "__"))
    return f"invalid setting {' or '.join(present) or name}: {reason}"
