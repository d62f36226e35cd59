"""Sign-in (OIDC authorisation code + PKCE), sign-out, language switch, static files, home.

May import: starlette/fastapi, `ehr_store`, `hie_server.auth`, `hie_server.web.*`.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from ehr_store import DomainError
from hie_server.auth import Principal
from hie_server.settings import LOOPBACK_HOSTS
from hie_server.web import i18n
from hie_server.web.core import HERE, LANG_COOKIE, PREFIX, Page, Workbench
from hie_server.web.session import COOKIE

LOCAL = Principal("local", "local-operator", "-", frozenset({"hie-admin"}))
STATIC = {p.name: p for p in (HERE / "static").iterdir() if p.is_file()}
MEDIA = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".txt": "text/plain"}


def _safe_next(value: str | None) -> str:
    """Only local workbench paths (no open redirect)."""
    if value and value.startswith(PREFIX + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return PREFIX + "/"


def _base(wb: Workbench, request: Request) -> str:
    return (wb.web.public_base_url or str(request.base_url)).rstrip("/")


def _with_cookie(response: Response, session_id: str, request: Request) -> Response:
    response.set_cookie(
        COOKIE, session_id, httponly=True, samesite="lax", path=PREFIX, secure=request.url.scheme == "https"
    )
    return response


def auth_routes(router: APIRouter, wb: Workbench) -> None:
    """`/login`, `/callback`, `/logout`, `/lang/{lang}`, `/static/{name}`."""

    async def login(request: Request) -> Response:
        target = _safe_next(request.query_params.get("next"))
        lang = wb.language(request)
        if wb.oidc is None:
            host = request.client.host if request.client else ""
            if host not in LOOPBACK_HOSTS:
                return wb.render(
                    request,
                    "error.html",
                    None,
                    lang,
                    status=403,
                    title=i18n.text(lang, "access_refused"),
                    message="no identity provider is configured: the workbench is open on loopback only",
                )
            session = wb.sessions.create(LOCAL, None)
            return _with_cookie(RedirectResponse(target, status_code=303), session.id, request)
        try:
            url, pending = await wb.oidc.start(f"{_base(wb, request)}{PREFIX}/callback", target)
        except DomainError as exc:
            return wb.render(
                request,
                "error.html",
                None,
                lang,
                status=503,
                title=i18n.text(lang, "error_title"),
                message=exc.diagnostics,
            )
        wb.sessions.remember(pending)
        return RedirectResponse(url, status_code=303)

    async def callback(request: Request) -> Response:
        q = request.query_params
        lang = wb.language(request)
        pending = wb.sessions.take(q.get("state", ""))
        if wb.oidc is None or pending is None or not q.get("code"):
            message = (
                q.get("error_description") or q.get("error") or "the sign-in expired or was not started here"
            )
            return wb.render(
                request,
                "error.html",
                None,
                lang,
                status=400,
                title=i18n.text(lang, "error_title"),
                message=message,
                retry=True,
            )
        verifier = getattr(request.app.state, "token_verifier", None)
        try:
            tokens = await wb.oidc.exchange(q["code"], pending)
            if verifier is None:
                raise DomainError("the API has no token verifier")
            principal: Principal = await run_in_threadpool(verifier.verify, tokens.access_token)
        except DomainError as exc:
            return wb.render(
                request,
                "error.html",
                None,
                lang,
                status=401,
                title=i18n.text(lang, "error_title"),
                message=exc.diagnostics,
                retry=True,
            )
        session = wb.sessions.create(principal, tokens)
        return _with_cookie(RedirectResponse(pending.next_path, status_code=303), session.id, request)

    @wb.page
    async def logout(page: Page) -> Response:
        wb.sessions.drop(page.session.id)
        target = f"{_base(wb, page.request)}{PREFIX}/"
        url = None
        if wb.oidc is not None and page.session.tokens is not None:
            await wb.oidc.revoke(page.session.tokens)
            url = await wb.oidc.logout_url(page.session.tokens, target)
        response = RedirectResponse(url or target, status_code=303)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    async def language(request: Request) -> Response:
        lang = request.path_params["lang"]
        response = RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
        if lang in i18n.LANGUAGES:
            response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", path=PREFIX)
        return response

    async def static(request: Request) -> Response:
        path = STATIC.get(request.path_params["name"])
        if path is None:
            return Response("not found", status_code=404)
        return FileResponse(
            path,
            media_type=MEDIA.get(path.suffix, "application/octet-stream"),
            headers={"Cache-Control": "public, max-age=86400"},
        )

    router.add_route(f"{PREFIX}/login", login, methods=["GET"])
    router.add_route(f"{PREFIX}/callback", callback, methods=["GET"])
    router.add_route(f"{PREFIX}/logout", logout, methods=["POST"])
    router.add_route(f"{PREFIX}/lang/{{lang}}", language, methods=["GET"])
    router.add_route(f"{PREFIX}/static/{{name}}", static, methods=["GET"])

    async def root(request: Request) -> Response:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    router.add_route(PREFIX, root, methods=["GET"])
