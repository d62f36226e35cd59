"""The `hie` command line (INTERFACES.md): `hie serve`, `hie db upgrade`, and the commands
other modules register (`hie_server.cli_hl7`, `hie_server.cli_ops`: `register(app)`).

Settings are built here (the entry point) from `HIE_*` and the flags, then passed down.

May import: typer, `ehr_store`, `ehr_store.empi`, `terminology`, `adapters` (public APIs), `hie_server.*`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Annotated

import typer

from adapters import IngestService
from ehr_store import DomainError, Store, Unavailable
from ehr_store.empi import EmpiService, load_rules
from hie_server import (
    cli_auth,
    cli_empi,
    cli_hl7,
    cli_imaging,
    cli_ops,
    cli_surveillance,
    cli_telemedicine,
    cli_terminology,
)
from hie_server.auth.install import serving_settings
from hie_server.cli_common import DatabaseUrl, env_settings, open_checked
from hie_server.cli_common import fail as _fail
from hie_server.operations.empi import empi_module
from hie_server.operations.telemedicine import telemedicine_module
from hie_server.operations.terminology import terminology_module
from hie_server.runtime import BackgroundService, serve
from hie_server.settings import LOOPBACK_HOSTS, HieSettings, with_overrides
from hie_server.startup import UnmappedCountFlusher, ensure_terminology
from hie_server.web import admin_module, workbench_router
from telemedicine import TelemedicineService
from terminology import TerminologyService

app = typer.Typer(no_args_is_help=True, help="Qingyuan regional health information exchange")
db_app = typer.Typer(no_args_is_help=True, help="Database schema commands")
app.add_typer(db_app, name="db")
cli_ops.register(app)
cli_terminology.register(app)
cli_hl7.register(app)
cli_auth.register(app)
cli_empi.register(app)
cli_surveillance.register(app)
cli_imaging.register(app)
cli_telemedicine.register(app)


def open_checked_store(settings: HieSettings) -> Store:
    """Open the store and check it is at the current schema.

    Raises: typer.Exit(1) with the message naming `hie db upgrade` when it is not.
    """
    return open_checked(
        settings, hint="run `hie db upgrade` to bring the database up to date", prefix="cannot serve: "
    )


def background_services(
    settings: HieSettings, store: Store, mllp_port: int | None, ingest: IngestService | None = None
) -> Sequence[BackgroundService]:
    """Services sharing the server's event loop. The HL7 module adds its MLLP listener here."""
    return cli_hl7.mllp_services(settings, store, mllp_port, ingest)


@app.command("serve")
def serve_command(
    host: Annotated[str | None, typer.Option(help="Listen address (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default 8080)")] = None,
    mllp_port: Annotated[int | None, typer.Option("--mllp-port", help="MLLP port (default 2575)")] = None,
    mllp_processes: Annotated[
        int | None,
        typer.Option(
            "--mllp-processes",
            min=1,
            max=64,
            help="MLLP listener processes sharing the port (default 1; more needs PostgreSQL)",
        ),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Serve the FHIR API at http://HOST:PORT/fhir (flags override HIE_* settings)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = with_overrides(env_settings(), host=host, port=port, database_url=database_url)
    if mllp_processes is not None:
        settings = settings.model_copy(
            update={"mllp": settings.mllp.model_copy(update={"processes": mllp_processes})}
        )
    settings = serving_settings(settings)  # audit on by default
    if not settings.auth.enabled:
        if settings.http.host not in LOOPBACK_HOSTS:
            raise _fail(
                f"refusing to listen on {settings.http.host}: no identity provider is configured, so the "
                "exchange serves only on loopback (127.0.0.1, ::1, localhost); set HIE_AUTH__ISSUER"
            )
        typer.secho(
            "warning: no identity provider configured; serving on loopback only, without authentication",
            err=True,
            fg=typer.colors.YELLOW,
        )
    store = open_checked_store(settings)
    try:
        # One terminology service and one EMPI for the REST operations and ingestion alike.
        terminology = TerminologyService(store, settings.terminology)
        ensure_terminology(store, terminology)
        empi = EmpiService(load_rules(settings.empi))
        ingest = cli_hl7.build_ingest_service(settings, store, terminology=terminology, empi=empi)
        held = settings.terminology.unmapped_flush_seconds > 0  # counts held in memory: written on time
        flushers: list[BackgroundService] = [UnmappedCountFlusher(terminology)] if held else []
        telemed = TelemedicineService(store, settings.telemedicine)
        cdc_modules, cdc_routers, cdc_services = cli_surveillance.server_parts(settings, store, terminology)
        asyncio.run(
            serve(
                settings,
                store,
                extra_services=[
                    *background_services(settings, store, mllp_port, ingest),
                    *flushers,
                    *cli_imaging.imaging_services(settings, store),
                    *cdc_services,
                ],
                root_routers=[
                    *cli_hl7.http_routers(settings, store, ingest),
                    *cli_imaging.imaging_routers(settings, store),
                    *cdc_routers,
                    *([workbench_router(settings)] if settings.web.enabled else []),
                ],
                modules=[
                    terminology_module(terminology),
                    empi_module(empi),
                    telemedicine_module(telemed),
                    *cdc_modules,
                    admin_module(ingest, empi, terminology, settings.store.default_timezone),
                ],
                identity=empi,  # source Patients written through the API are linked too
            )
        )
    except Unavailable as exc:
        raise _fail(str(exc)) from None
    finally:
        store.close()


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrl = None) -> None:
    """Bring the database to the current schema and load the shipped terminology content
    when it is missing (both idempotent)."""
    from ehr_store import open_store, upgrade_schema

    settings = with_overrides(env_settings(), database_url=database_url)
    try:
        revision = upgrade_schema(settings.store.database_url)
        store = open_store(settings.store)
        try:
            loaded = ensure_terminology(store)
        finally:
            store.close()
    except DomainError as exc:
        raise _fail(f"upgrade failed: {exc.diagnostics}") from None
    typer.echo(f"database at schema revision {revision}")
    if loaded is not None:
        typer.echo(
            f"terminology content loaded: {len(loaded.created)} created, {len(loaded.updated)} updated"
        )


def main() -> None:
    """Console-script entry point `hie`."""
    app()
