"""Pieces every `hie` sub-command shares: the `--database-url` option, the red error exit,
reading `HIE_*` settings (a bad value is a one-line error naming the variable, not a
traceback), and opening the store checked against the current schema.

One copy here so the `cli_*` modules (and `hie_server.cli`) say the same thing the same way.

May import: typer, `ehr_store` (public API), `hie_server.settings`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ehr_store import DomainError, Store, open_store
from hie_server.settings import HieSettings, InvalidSettings, settings_from_env, with_overrides

DatabaseUrl = Annotated[
    str | None, typer.Option("--database-url", help="SQLAlchemy URL (default: HIE_DATABASE_URL)")
]

UPGRADE_HINT = "run `hie db upgrade` first"


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `message` in red on stderr and return the `typer.Exit(code)` to raise."""
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def env_settings() -> HieSettings:
    """HieSettings from `HIE_*` for a command; every `hie` command reads its settings here.

    Raises: typer.Exit(1) after printing one red line per bad variable on stderr, e.g.
    `invalid setting HIE_MLLP__PROCESSES=0: Input should be greater than or equal to 1`
    (secret values are not printed; see `hie_server.settings.settings_from_env`).
    """
    try:
        return settings_from_env()
    except InvalidSettings as exc:
        raise fail(str(exc)) from None


def open_checked(settings: HieSettings, hint: str = UPGRADE_HINT, prefix: str = "") -> Store:
    """Open the store of `settings` and check it is at the current schema.

    Returns: the open Store (the caller closes it).
    Raises: typer.Exit(1) after printing `prefix`, the diagnostics and `hint` when the schema
    is missing or behind (the store is closed then).
    """
    store = open_store(settings.store)
    try:
        store.check_schema()
    except DomainError as exc:
        store.close()
        raise fail(f"{prefix}{exc.diagnostics}\n{hint}") from None
    return store


def open_for(database_url: str | None) -> tuple[HieSettings, Store]:
    """Settings from `HIE_*` with `--database-url` applied, and the checked open store.

    Raises: typer.Exit(1) as `open_checked` does.
    """
    settings = with_overrides(env_settings(), database_url=database_url)
    return settings, open_checked(settings)
