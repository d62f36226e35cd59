"""`hie login` and `hie keycloak provision` (registered on the `hie` app by `register(app)`).

- `hie login [--issuer URL] [--client-id hie-cli] [--username U] [--client-secret S] [--scope ...]
  [--print-token]`: tokens from the realm's token endpoint, saved to `~/.config/hie/token.json`
  (mode 0600) or printed (`--print-token`, for `curl -H "Authorization: Bearer $(hie login ...)"`).
- `hie keycloak provision [--server URL] [--admin-user U] [--realm-file PATH] [--realm NAME]
  [--demo-users/--no-demo-users]`: create or update the realm from the versioned description.
  The admin password comes from `HIE_KEYCLOAK_ADMIN_PASSWORD` or a prompt, never a flag.

May import: typer, `ehr_store` (error kinds), `hie_server.auth`, `hie_server.settings`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated

import typer

from ehr_store import DomainError
from hie_server.auth import keycloak_admin
from hie_server.settings import HieSettings

DEFAULT_REALM_FILE = Path(__file__).resolve().parents[1] / "docker" / "keycloak" / "qingyuan-realm.json"
TOKEN_FILE = Path.home() / ".config" / "hie" / "token.json"

keycloak_app = typer.Typer(no_args_is_help=True, help="Keycloak realm administration")


def _issuer(given: str | None) -> str:
    issuer = given or HieSettings().auth.issuer
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


def register(app: typer.Typer) -> None:
    """Add `hie login` and `hie keycloak ...` to the `hie` command line."""
    app.command("login")(login_command)
    app.add_typer(keycloak_app, name="keycloak")
