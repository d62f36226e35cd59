"""`hie telemedicine remind` (the day-before reminders), `publish` (slots from a template) and
`holidays` (show the holiday calendar in use).

Wiring: `hie_server.cli` calls `cli_telemedicine.register(app)`. Run `remind` once a day (cron or
systemd timer), e.g. at 18:00: it records a Communication per booked appointment of the next
day (idempotent: a second run sends nothing new) and delivers them to the webhooks.

May import: typer, `ehr_store`, `telemedicine` (public API), `hie_server.settings`.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer

from ehr_store import DomainError
from hie_server.cli_common import DatabaseUrl, env_settings, open_for
from telemedicine import TelemedicineService, load_calendar, template_from_json

telemedicine_app = typer.Typer(no_args_is_help=True, help="Remote registration and consultation")


@telemedicine_app.command("remind")
def remind_command(
    day: Annotated[str | None, typer.Option("--date", help="Appointment date (default: tomorrow)")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Record and deliver reminders for the booked appointments of DATE (default tomorrow)."""
    target = date.fromisoformat(day) if day else date.today() + timedelta(days=1)
    settings, store = open_for(database_url)
    service = TelemedicineService(store, settings.telemedicine)
    try:
        sent = service.send_reminders(target)
        service.dispatcher.wait_idle(60)
    finally:
        service.close()
        store.close()
    typer.echo(f"{len(sent)} reminder(s) for {target.isoformat()}")


@telemedicine_app.command("publish")
def publish_command(
    template: Annotated[Path, typer.Argument(help="Schedule template (JSON)")],
    start: Annotated[str, typer.Option(help="First day (YYYY-MM-DD)")],
    days: Annotated[int, typer.Option(help="Number of days")] = 28,
    database_url: DatabaseUrl = None,
) -> None:
    """Publish a specialist's Schedule and Slots from a template (idempotent)."""
    try:
        parsed = template_from_json(json.loads(template.read_text(encoding="utf-8")))
    except (OSError, ValueError, DomainError) as exc:
        typer.secho(f"cannot read {template}: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    settings, store = open_for(database_url)
    service = TelemedicineService(store, settings.telemedicine)
    try:
        report = service.publish(parsed, date.fromisoformat(start), days)
    except DomainError as exc:
        typer.secho(f"publish failed: {exc.diagnostics}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    finally:
        service.close()
        store.close()
    typer.echo(
        f"{report.schedule}: {len(report.created)} slot(s) created, {len(report.closed)} closed, "
        f"{report.unchanged} unchanged, {len(report.orphaned)} booked slot(s) no longer planned"
    )


@telemedicine_app.command("holidays")
def holidays_command(year: Annotated[int, typer.Option(help="Year")] = date.today().year) -> None:
    """List the holidays and 调休 working days of YEAR from the configured calendar."""
    calendar = load_calendar(env_settings().telemedicine.holiday_calendar)
    if year in calendar.provisional:
        typer.echo(f"{year}: provisional (statutory days only; update the calendar file)")
    for day, name in sorted(calendar.holidays.items()):
        if day.year == year:
            typer.echo(f"{day.isoformat()} {name}")
    for day in sorted(calendar.working_days):
        if day.year == year:
            typer.echo(f"{day.isoformat()} 调休上班")


def register(app: typer.Typer) -> None:
    """Add `hie telemedicine …` to the main command."""
    app.add_typer(telemedicine_app, name="telemedicine")
