"""ASGI middleware: authentication, access rules and audit around `/fhir` and `/hl7v2`.

Installed by `create_app` (`install(app, settings, store)`) when an identity provider is
configured (`HIE_AUTH__ISSUER`) or audit is switched on (`HIE_AUDIT__ENABLED=true`).

Per request to a protected path (the FHIR base and `/hl7v2`; `/fhir/metadata` and the
`.well-known` documents stay public):
1. Bearer token verified (`tokens.TokenVerifier`) -> 401 + `WWW-Authenticate: Bearer` and an
   OperationOutcome; the failed login is audited.
2. `guard.AccessGuard.before` -> 403 OperationOutcome naming the refusing rule (audited).
3. The app runs. Writes: the AuditEvent is created in the same unit of work, just before it
   commits (`hie_server.context.before_commit`). Reads: the JSON answer is buffered and
   filtered by `AccessGuard.after`; the AuditEvent goes to the background `AuditWriter`.
Without an identity provider only step 3's audit runs (agent `anonymous`).

May import: starlette, `ehr_store`, `hie_server.*`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ehr_store import DomainError, Forbidden, Issue, StoredResource, Unauthenticated, UnitOfWork
from hie_server.auth.audit import AccessRecord, AuditWriter, audit_event, write_events
from hie_server.auth.classify import classify
from hie_server.auth.guard import FILTERED, AccessGuard, RequestState
from hie_server.auth.keycloak_admin import Introspector
from hie_server.auth.policy import Action
from hie_server.auth.principal import Principal
from hie_server.auth.tokens import TokenVerifier, bearer_token
from hie_server.context import before_commit
from hie_server.errors import outcome_response, status_for

log = logging.getLogger("hie_server.auth")
ANONYMOUS = Principal("anonymous", "anonymous", "-", frozenset({"hie-admin"}))


class AuthAuditMiddleware:
    """See module docstring. `verifier`/`guard` None: no identity provider (audit only)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        base_path: str,
        verifier: TokenVerifier | None,
        guard: AccessGuard | None,
        writer: AuditWriter | None,
        site: str,
        public_paths: tuple[str, ...],
        max_body_bytes: int,
        introspector: Introspector | None = None,
    ) -> None:
        self.app = app
        self.base = base_path.rstrip("/")
        self.verifier = verifier
        self.guard = guard
        self.writer = writer
        self.site = site
        self.public = public_paths
        self.max_body = max_body_bytes
        self.introspector = introspector

    def _protected(self, path: str) -> bool:
        if any(path == p or (p.endswith("/") and path.startswith(p)) for p in self.public):
            return False
        return path == self.base or path.startswith(self.base + "/") or path.startswith("/hl7v2")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        query = scope.get("query_string", b"").decode("latin-1")
        action = Action("hl7v2") if path.startswith("/hl7v2") else classify(method, path[len(self.base) :])
        record = AccessRecord(
            action.interaction,
            method,
            path,
            query,
            address=(scope.get("client") or ("-",))[0],
            request_id=(scope.get("state") or {}).get("request_id"),
        )
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        try:
            principal = await self._authenticate(headers)
        except Unauthenticated as exc:
            await self._refuse(status_for(exc), exc, record, scope, receive, send, "login")
            return
        record.principal = principal
        scope.setdefault("state", {})["principal"] = principal  # for routes that check ownership
        scope["state"]["access_record"] = record  # routes add the resident and the deciding rule
        body = await self._body(receive) if method in ("POST", "PUT", "PATCH") else b""
        state = RequestState(principal, action, parse_qsl(query, keep_blank_values=True))
        try:
            if self.guard is not None:
                await self.guard.before(state, headers, body)
        except DomainError as exc:
            await self._refuse(status_for(exc), exc, record, scope, receive, send)
            return
        record.break_glass_reason = state.break_glass_reason
        await self._run(scope, body, receive, send, state, record)

    async def _authenticate(self, headers: dict[str, str]) -> Principal:
        if self.verifier is None:
            return ANONYMOUS
        token = bearer_token(headers.get("authorization"))
        if self.verifier.needs_fetch(token):
            principal = await run_in_threadpool(self.verifier.verify, token)
        else:
            principal = self.verifier.verify(token)
        if self.introspector is not None and not await run_in_threadpool(self.introspector.active, token):
            raise Unauthenticated("the token is no longer active (revoked or logged out)")
        return principal

    async def _body(self, receive: Receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                break  # the app's own limit answers 413
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _refuse(
        self,
        status: int,
        exc: DomainError,
        record: AccessRecord,
        scope: Scope,
        receive: Receive,
        send: Send,
        interaction: str | None = None,
    ) -> None:
        record.status, record.outcome_text = status, exc.diagnostics
        if interaction:
            record.interaction = interaction
        record.rule = _rule_of(exc.diagnostics)
        self._queue(record)
        headers = {}
        if status == 401:  # RFC 6750 §3: no error code when no credentials were presented
            presented = any(k == b"authorization" for k, _ in scope.get("headers", []))
            description = exc.diagnostics[:120].replace('"', "'").replace("\n", " ")
            headers["WWW-Authenticate"] = (
                f'Bearer realm="hie", error="invalid_token", error_description="{description}"'
                if presented
                else 'Bearer realm="hie"'
            )
        issues = exc.issues or [Issue("error", "forbidden" if status == 403 else "login", exc.diagnostics)]
        await outcome_response(status, issues, headers)(scope, receive, send)

    def _queue(self, record: AccessRecord) -> None:
        if self.writer is not None:
            self.writer.submit(audit_event(record, self.site))

    def _write_hook(self, record: AccessRecord, written: list[bool]) -> Callable[[UnitOfWork, object], None]:
        def hook(uow: UnitOfWork, result: object) -> None:
            stored = _stored_of(result)
            record.resources.extend(s.reference for s in stored)
            record.status = record.status or 200
            write_events(uow, [audit_event(record, self.site)])
            written.append(True)

        return hook

    async def _run(
        self,
        scope: Scope,
        body: bytes,
        receive: Receive,
        send: Send,
        state: RequestState,
        record: AccessRecord,
    ) -> None:
        guard = self.guard
        filtering = scope["method"] in ("GET", "HEAD", "POST") and state.action.interaction in FILTERED
        if guard is not None:
            widened = guard.rewrite_query(state)
            if widened is not None:
                scope = {**scope, "query_string": urlencode(widened).encode("latin-1")}
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:  # body replayed once; from now on wait for the client's real disconnect
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                start.update(message)
                if not filtering:
                    await send(message)
                return
            if not filtering:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                await self._finish(start, b"".join(chunks), send, state, record)

        written: list[bool] = []
        token = before_commit.set(self._write_hook(record, written)) if self.writer else None
        try:
            await self.app(scope, replay, capture)
        finally:
            if token is not None:
                before_commit.reset(token)
        if not written or record.status >= 400:
            self._queue(record)

    async def _finish(
        self, start: dict[str, Any], body: bytes, send: Send, state: RequestState, record: AccessRecord
    ) -> None:
        status = start.get("status", 500)
        if self.guard is not None and status == 200 and body[:1] == b"{":
            try:
                changed = await self.guard.after(state, body, record)
            except Forbidden as exc:
                record.status, record.outcome_text, record.rule = (
                    403,
                    exc.diagnostics,
                    _rule_of(exc.diagnostics),
                )
                response = outcome_response(403, exc.issues)
                start = {"type": "http.response.start", "status": 403, "headers": response.raw_headers}
                changed = bytes(response.body)
            if changed is not None:
                body = changed
                headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                start = {**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
        elif status == 200 and body[:1] == b"{":
            AccessGuard._note(record, _resources_of(body))
        # a break-glass window opened by an earlier request is found while filtering: flag it too
        record.break_glass_reason = record.break_glass_reason or state.break_glass_reason
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})


def _rule_of(diagnostics: str) -> str | None:
    marker = "rule '"
    if marker in diagnostics:
        return diagnostics.split(marker, 1)[1].split("'", 1)[0]
    return None


def _stored_of(result: object) -> list[StoredResource]:
    if isinstance(result, StoredResource):
        return [result]
    stored = getattr(result, "stored", None)
    if isinstance(stored, StoredResource):
        return [stored]
    if isinstance(result, list | tuple):
        return [s for item in result for s in _stored_of(item)]
    return []


def _resources_of(body: bytes) -> list[dict[str, Any]]:
    import orjson

    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(document, dict):
        return []
    if document.get("resourceType") == "Bundle":
        return [e["resource"] for e in document.get("entry", []) if isinstance(e.get("resource"), dict)]
    return [document]
