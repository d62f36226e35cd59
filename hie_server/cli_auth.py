"""`hie login` and `hie keycloak provision` (registered on the `hie` app by `register(app)`).

- `hie login [--issuer URL] [--client-id hie-cli] [--username U] [--client-secret S] [--scope ...]
  [--print-token]`: tokens from the realm's token endpoint, saved to `~/.config/hie/token.json`
  (mode 0600) or printed (`--print-token`, for `curl -H "Authorization: Bearer $(hie login ...)"`).
- `hie keycloak provision [--server URL] [--admin-user U] [--realm-file PATH] [--realm NAME]
  [--demo-users/--no-demo-users]`: create or update the realm from the versioned description.
  The admin password comes from `HIE_KEYCLOAK_ADMIN_PASSWORD` or a prompt, never a flag.
- `hie audit break-glass [--since 2026-11-01 | --since 7d] [--json] [--database-url URL]`: the
  break-glass accesses recorded in the AuditEvents, oldest first, for admins to review.

May import: typer, `ehr_store` (error kinds), `hie_server.auth`, `hie_server.settings`.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated

import typer

from ehr_store import DomainError
from hie_server.auth import keycloak_admin
from hie_server.auth.report import break_glass_accesses
from hie_server.cli_common import DatabaseUrl, env_settings, open_for

DEFAULT_REALM_FILE = Path(__file__).resolve().parents[1] / "docker" / "keycloak" / "qingyuan-realm.json"
TOKEN_FILE = Path.home() / ".config" / "hie" / "token.json"

keycloak_app = typer.Typer(no_args_is_help=True, help="Keycloak realm administration")
CHINA_TIME = timezone(timedelta(hours=8))
audit_app = typer.Typer(no_args_is_help=True, help="Audit reports (AuditEvents)")


def _issuer(given: str | None) -> str:
    issuer = given or env_settings().auth.issuer
    if not issuer:
        typer.secho("no issuer: pass --issuer or set HIE_AUTH__ISSUER", err=True, fg=typer.colors.RED)
        raise typer.Exit(2)
    return issuer


def login_command(
    issuer: Annotated[str | None, typer.Option(help="Realm URL (default HIE_AUTH__ISSUER)")] = None,
    client_id: Annotated[str, typer.Option("--client-id", help="OIDC client")] = "hie-cli",
    username: Annotated[str | None, typer.Option(help="User (password grant)")] = None,
    client_secret: Annotated[
        str | None,
        typer.Option(
            "--client-secret", envvar="HIE_CLIENT_SECRET", help="Client secret (client credentials grant)"
        ),
    ] = None,
    scope: Annotated[str, typer.Option(help="Requested scopes")] = "openid",
    print_token: Annotated[bool, typer.Option("--print-token", help="Print the access token only")] = False,
) -> None:
    """Sign in at the identity provider and keep (or print) the access token."""
    realm_url = _issuer(issuer)
    password = None
    if username is not None:
        password = os.environ.get("HIE_PASSWORD") or typer.prompt("password", hide_input=True)
    elif client_secret is None:
        typer.secho(
            "pass --username (password grant) or --client-secret (client credentials)",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(2)
    try:
        tokens = keycloak_admin.login(
            realm_url,
            client_id,
            username=username,
            password=password,
            client_secret=client_secret,
            scope=scope,
        )
    except DomainError as exc:
        typer.secho(f"login failed: {exc.diagnostics}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    if print_token:
        typer.echo(tokens["access_token"])
        return
    TOKEN_FILE.parent.mkdir(parents=True, exist_ok=True)
    record = {"issuer": realm_url, "client_id": client_id, "obtained_at": int(time.time()), **tokens}
    TOKEN_FILE.touch(mode=0o600, exist_ok=True)
    TOKEN_FILE.write_text(json.dumps(record), encoding="utf-8")
    typer.echo(f"signed in; access token valid for {tokens.get('expires_in', '?')} s, saved to {TOKEN_FILE}")


@keycloak_app.command("provision")
def provision_command(
    server: Annotated[
        str | None, typer.Option(help="Keycloak base URL (default: from HIE_AUTH__ISSUER)")
    ] = None,
    admin_user: Annotated[str, typer.Option("--admin-user", envvar="HIE_KEYCLOAK_ADMIN")] = "admin",
    realm_file: Annotated[
        Path, typer.Option("--realm-file", exists=True, dir_okay=False)
    ] = DEFAULT_REALM_FILE,
    realm: Annotated[str | None, typer.Option(help="Realm name (default: the file's)")] = None,
    demo_users: Annotated[
        bool,
        typer.Option(
            "--demo-users/--no-demo-users", help="Also create the synthetic demo users and dev secrets"
        ),
    ] = False,
) -> None:
    """Create or update the realm, roles, clients, mappers (and demo users) in Keycloak."""
    base = server or keycloak_admin.split_issuer(_issuer(None))[0]
    password = os.environ.get("HIE_KEYCLOAK_ADMIN_PASSWORD") or typer.prompt(
        "admin password", hide_input=True
    )
    doc = json.loads(realm_file.read_text(encoding="utf-8"))
    if realm:
        doc["realm"] = realm
    try:
        report = keycloak_admin.provision(base, admin_user, password, doc, demo_users=demo_users)
    except DomainError as exc:
        typer.secho(f"provision failed: {exc.diagnostics}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    for verb, table in (("created", report.created), ("updated", report.updated)):
        for kind, names in table.items():
            typer.echo(
                f"{verb} {len(names)} {kind}(s): {', '.join(names[:8])}{' …' if len(names) > 8 else ''}"
            )


def parse_since(value: str | None, now: datetime | None = None) -> datetime | None:
    """`--since`: an ISO date or date-time (China time, +08:00, when it has no offset) or an
    age like `7d`, `12h`, `30m`. Raises: typer.BadParameter."""
    if not value:
        return None
    now = now or datetime.now(UTC)
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if value[-1:] in units and value[:-1].isdigit():
        return now - timedelta(**{units[value[-1]]: int(value[:-1])})
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: give a date (2026-11-01), a date-time or an age (7d, 12h)"
        ) from None
    return (
        when if when.tzinfo else when.replace(tzinfo=datetime.fromisoformat("2000-01-01T00:00+08:00").tzinfo)
    )


@audit_app.command("break-glass")
def break_glass_command(
    since: Annotated[str | None, typer.Option(help="From this date/time or age (7d, 12h)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Break-glass accesses (who, facility, resident, reason, request, outcome), oldest first."""
    store = open_for(database_url)[1]
    try:
        rows = break_glass_accesses(store, parse_since(since))
    except DomainError as exc:
        typer.secho(exc.diagnostics, err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    finally:
        store.close()
    if as_json:
        for row in rows:
            typer.echo(json.dumps({f: getattr(row, f) for f in row.__slots__}, ensure_ascii=False))
        return
    for r in rows:
        typer.echo(
            f"{r.recorded}  {r.user}@{r.facility or '-'}  {', '.join(r.patients) or '-'}  "
            f"{r.interaction} {r.request or ''}  outcome {r.outcome}  reason: {r.reason}  "
            f"(AuditEvent/{r.event_id})"
        )
    users = {r.user for r in rows}
    typer.echo(
        f"{len(rows)} break-glass access(es) by {len(users)} user(s)" + (f" since {since}" if since else "")
    )


def register(app: typer.Typer) -> None:
    """Add `hie login`, `hie keycloak ...` and `hie audit ...` to the `hie` command line."""
    app.command("login")(login_command)
    app.add_typer(keycloak_app, name="keycloak")
    app.add_typer(audit_app, name="audit")
