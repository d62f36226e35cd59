"""The workbench's plumbing: templates, sessions, sign-in state and the `page` decorator.

`Workbench(settings)` holds the Jinja2 environment, the session store and the OIDC client.
`@wb.page` wraps a route: it finds the session (else redirects to sign-in), refreshes the access
token when it is about to expire, opens an `Api` with the user's token, checks the CSRF token on
POST, and turns API refusals into a page that says so (403 stays 403).

May import: jinja2, starlette/fastapi, `ehr_store`, `hie_server.auth`, `hie_server.web.*`.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ehr_store import DomainError
from hie_server.settings import HieSettings
from hie_server.web import i18n
from hie_server.web.api import Api, ApiError
from hie_server.web.oidc import OidcClient
from hie_server.web.session import COOKIE, Session, SessionStore

HERE = Path(__file__).resolve().parent
LANG_COOKIE = "hie_lang"
PREFIX = "/workbench"


class LoginRequired(Exception):
    """No (live) session: send the browser to sign in."""


@dataclass
class Page:
    """What a page handler gets: the request, its session, the API client and the language."""

    request: Request
    session: Session
    api: Api
    lang: str
    wb: Workbench
    started: float = field(default_factory=time.perf_counter)

    def t(self, key: str, **fields: object) -> str:
        return i18n.text(self.lang, key, **fields)

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        return self.wb.render(
            self.request, template, self.session, self.lang, status=status, started=self.started, **values
        )

    def flash(self, kind: str, message: str) -> None:
        self.session.flash.append((kind, message))

    def redirect(self, path: str) -> RedirectResponse:
        return RedirectResponse(path, status_code=303)

    async def form(self) -> dict[str, Any]:
        """The posted form (CSRF already checked by `page`), multi-valued keys as lists."""
        data = await self.request.form()
        out: dict[str, Any] = {}
        for key in data:
            values = [str(v) for v in data.getlist(key)]
            out[key] = values if len(values) > 1 else values[0]
        return out


Handler = Callable[..., Awaitable[Response]]


class Workbench:
    """Shared state of the workbench routes (one per app)."""

    def __init__(self, settings: HieSettings) -> None:
        self.settings = settings
        self.web = settings.web
        self.base = settings.http.base_path.rstrip("/")
        self.sessions = SessionStore(self.web.session_minutes * 60.0)
        issuer = settings.auth.issuer
        self.oidc = OidcClient(issuer, self.web.client_id) if issuer else None
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals["P"] = PREFIX

    def language(self, request: Request) -> str:
        lang = request.cookies.get(LANG_COOKIE) or self.web.default_language
        return lang if lang in i18n.LANGUAGES else "zh"

    def render(
        self,
        request: Request,
        template: str,
        session: Session | None,
        lang: str,
        *,
        status: int = 200,
        started: float | None = None,
        **values: Any,
    ) -> HTMLResponse:
        """Render `template` with the common context (user, roles, texts, CSRF, flash messages)."""
        flash = list(session.flash) if session else []
        if session:
            session.flash.clear()
        context = {
            "t": functools.partial(i18n.text, lang),
            "lang": lang,
            "session": session,
            "user": session.principal if session else None,
            "csrf": session.csrf if session else "",
            "flash": flash,
            "path": request.url.path,
            "query": request.url.query,
            "local": session is not None and session.tokens is None,
            **values,
        }
        body = self.env.get_template(template).render(context)
        if started is not None:
            ms = (time.perf_counter() - started) * 1000
            body = body.replace("<!--build-time-->", i18n.text(lang, "load_ms", ms=f"{ms:.0f}"))
        response = HTMLResponse(body, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self'; form-action " + " ".join(filter(None, ("'self'", self._issuer_origin())))
        )  # no trailing space: h11 refuses header values that end in white space
        return response

    def _issuer_origin(self) -> str:
        issuer = self.settings.auth.issuer or ""
        parts = issuer.split("/")
        return "/".join(parts[:3]) if len(parts) >= 3 else ""

    async def session_of(self, request: Request) -> Session:
        """The live session, its access token refreshed when it expires within 30 s.
        Raises: LoginRequired."""
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            raise LoginRequired
        tokens = session.tokens
        if tokens is not None and self.oidc is not None and tokens.expires_at - time.time() < 30:
            try:
                session.tokens = await self.oidc.refresh(tokens)
            except DomainError:
                self.sessions.drop(session.id)
                raise LoginRequired from None
        return session

    def page(self, handler: Handler) -> Handler:
        """Decorate a page handler `handler(page, **path_params)` (see module docstring)."""

        async def wrapper(request: Request) -> Response:
            kwargs = dict(request.path_params)
            lang = self.language(request)
            try:
                session = await self.session_of(request)
            except LoginRequired:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                if request.method != "GET":
                    target = PREFIX + "/"
                return RedirectResponse(f"{PREFIX}/login?next={quote(target)}", status_code=303)
            if request.method == "POST":
                form = await request.form()
                if not secrets.compare_digest(str(form.get("csrf", "")), session.csrf):
                    return self.render(
                        request,
                        "error.html",
                        session,
                        lang,
                        status=403,
                        title=i18n.text(lang, "error_title"),
                        message="CSRF token missing or wrong; reload the page and try again",
                    )
            client = request.client.host if request.client else "127.0.0.1"
            api = Api(request.app, session, self.base, client)
            page = Page(request, session, api, lang, self)
            try:
                return await handler(page, **kwargs)
            except ApiError as exc:
                if exc.status == 401:
                    self.sessions.drop(session.id)
                    return RedirectResponse(f"{PREFIX}/login", status_code=303)
                title = i18n.text(lang, "access_refused" if exc.status == 403 else "error_title")
                return page.render(
                    "error.html",
                    status=exc.status if 400 <= exc.status < 500 else 502,
                    title=title,
                    message=exc.message,
                )
            except DomainError as exc:
                return page.render(
                    "error.html", status=400, title=i18n.text(lang, "error_title"), message=exc.diagnostics
                )
            finally:
                await api.close()

        wrapper.__name__ = handler.__name__
        return wrapper
