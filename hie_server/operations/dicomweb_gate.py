"""The DICOMweb gate: who may retrieve which study, decided once for both DICOMweb paths.

`DicomwebGate` holds the checks of one DICOMweb request: Bearer token -> `Principal` (the
app's `TokenVerifier`), the endpoint rule `authorize(principal, Action(read|search|create,
"ImagingStudy"))` through the app's `AccessGuard.before` (break-glass included), and the
resident rule on the study's ImagingStudy subject through `AccessGuard.decide` (a specialist
needs an active referral/consultation to their facility and the resident's consent; a study not
yet in the record is for hie-admin only). `admit()` classifies the request (DICOM PS3.18 §9
WADO-URI, §10.4 WADO-RS, §10.5 STOW-RS, §10.6 QIDO-RS) and applies the endpoint rule;
`require_study()` the resident rule; `finish()` queues the AuditEvent (allowed or refused).

Two callers, one set of rules:
- the exchange's own DICOMweb routes (`hie_server.operations.imaging`), which then relay
  Orthanc's answer through Python;
- `GET /_internal/dicomweb-auth` (`add_gate_routes`), the nginx `auth_request` endpoint of the
  fast path (docs/imaging.md "Two paths"): nginx sends the caller's request head with
  `X-Original-Method` and `X-Original-URI`; the gate runs `admit` + `require_study` on that
  request exactly as the route would and answers `204` (nginx then serves the bytes from
  Orthanc or its cache) with `X-Hie-Study-Version: ImagingStudy/<id>/_history/<n>`, the
  version of the ImagingStudy the decision read (part of nginx's cache key, so an answer cached
  for an older version of the study is never served; absent when the study is not in the record
  or is ambiguous, and then nginx bypasses its cache), or the refusal's status (401/403;
  400/404/503 for a bad request, a missing endpoint or a failure) with the refusal as an
  OperationOutcome both in the body and, JSON with only ASCII and no control characters, in the
  `X-Hie-Outcome` header (nginx drops an auth subrequest's body; its `error_page` location
  returns that header as the body).
  Only bulk retrievals (WADO-RS, WADO-URI) are decided here; QIDO-RS and STOW-RS are refused
  (they must go through the exchange's routes, which filter answers and check uploads).

The internal endpoint is protected by a shared secret: `HIE_IMAGING__GATE_SECRET` must be set
(otherwise the route answers 404) and every call must carry it in `X-Hie-Gate-Secret`
(compared in constant time; a wrong or missing secret is 403 and audited). nginx adds the header
in its internal-only auth location; its public server answers 404 for `/_internal/`.

Latency (the caller waits for the decision before nginx asks Orthanc; docs/imaging.md "The
gate's latency"): the internal endpoint is a plain Starlette route; its AuditEvent is queued once
the answer is sent (`AuditedAnswer`), as FHIR reads queue theirs; tokens verified before are
reused while verifying again must accept them (`VerifiedTokens`); what each ImagingStudy version
claims is parsed once (`imaging.ClaimsMemo`). When `HIE_AUTH__INTROSPECTION` is on, the gate asks
the issuer as `/fhir` does.

May import: fastapi/starlette, `ehr_store`, `imaging`, `hie_server.*`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import secrets
import time
import weakref
from collections.abc import Callable, Sequence
from urllib.parse import parse_qsl, unquote, urlsplit

from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ehr_store import DomainError, Forbidden, InvalidInput, NotFound, Store, Unauthenticated
from hie_server.auth import AccessRecord, Action, Decision, ResidentFacts, bearer_token
from hie_server.auth import audit_event as build_audit_event
from hie_server.auth.guard import RequestState
from hie_server.auth.middleware import ANONYMOUS
from hie_server.auth.principal import Principal
from hie_server.auth.tokens import TokenVerifier
from hie_server.errors import FHIR_JSON, outcome, status_for
from hie_server.settings import HieSettings
from imaging import ClaimsMemo, Target, indexed_studies, parse_target, study_resource_id

log = logging.getLogger("hie_server.imaging")
GATE_PATH = "/_internal/dicomweb-auth"
SECRET_HEADER = "x-hie-gate-secret"
OUTCOME_HEADER = "X-Hie-Outcome"
VERSION_HEADER = "X-Hie-Study-Version"
BULK_KINDS = frozenset({"wado-rs", "wado-uri"})


_MEMOS: weakref.WeakKeyDictionary[Store, ClaimsMemo] = weakref.WeakKeyDictionary()


def claims_memo(store: Store) -> ClaimsMemo:
    """The `ClaimsMemo` of `store` (one per store object, for every gate on it)."""
    memo = _MEMOS.get(store)
    if memo is None:
        memo = _MEMOS.setdefault(store, ClaimsMemo())
    return memo


class VerifiedTokens:
    """Principals of the Bearer tokens `verifier` accepted, reused only while verifying again
    must give the same answer: `TokenVerifier.verify` is a function of the token, the signing
    key and the clock, and once a token has passed (`nbf`/`iat` behind us) only `exp` can
    change the result. So an entry holds until `exp` + the verifier's clock skew (PyJWT's
    leeway), and only while the verifier still holds that key from the same JWKS fetch (`has`:
    present and not older than `jwks_max_age_seconds`); otherwise the token is verified in full.
    A refused token is never kept. Saves the ~0.1-0.15 ms of signature check and three JWS
    parses per decision (docs/imaging.md, "The gate's latency"). Bounded (`size` tokens, then
    emptied); thread-safe (single dict operations)."""

    def __init__(self, verifier: TokenVerifier, size: int = 4096) -> None:
        self.verifier, self.size = verifier, size
        self._seen: dict[str, tuple[Principal, float, str, int]] = {}

    def get(self, token: str) -> Principal | None:
        """The Principal of a token verified before and still valid as above, else None."""
        hit = self._seen.get(token)
        if hit is None:
            return None
        principal, until, kid, fetches = hit
        jwks = self.verifier.jwks
        if time.time() < until and jwks.fetches == fetches and jwks.has(kid):
            return principal
        self._seen.pop(token, None)
        return None

    def put(self, token: str, principal: Principal) -> Principal:
        """Keep a token `verify` has just accepted; returns `principal`."""
        exp = principal.claims.get("exp")
        if isinstance(exp, int | float):
            kid = str(self.verifier.header(token).get("kid", ""))
            if len(self._seen) >= self.size:
                self._seen.clear()
            until = float(exp) + self.verifier.settings.clock_skew_seconds
            self._seen[token] = (principal, until, kid, self.verifier.jwks.fetches)
        return principal


_TOKENS: weakref.WeakKeyDictionary[TokenVerifier, VerifiedTokens] = weakref.WeakKeyDictionary()


def verified_tokens(verifier: TokenVerifier) -> VerifiedTokens:
    """The `VerifiedTokens` of `verifier` (one per verifier, for every gate using it)."""
    found = _TOKENS.get(verifier)
    if found is None:
        found = _TOKENS.setdefault(verifier, VerifiedTokens(verifier))
    return found


class DicomwebGate:
    """Authentication, the access rules and audit for one DICOMweb request (module docstring).

    `original`: (method, path, raw query) of the request to decide when it is not `request`
    itself (the nginx auth subrequest); default: `request`'s own."""

    def __init__(
        self,
        request: Request,
        settings: HieSettings,
        store: Store,
        interaction: str,
        original: tuple[str, str, str] | None = None,
    ) -> None:
        self.request, self.settings, self.store = request, settings, store
        self.method, self.path, query = original or (request.method, request.url.path, request.url.query)
        self.query = parse_qsl(query, keep_blank_values=True)
        state = request.app.state
        self.verifier = getattr(state, "token_verifier", None)
        self.introspector = getattr(state, "token_introspector", None)
        self.guard = getattr(state, "access_guard", None)
        self.writer = getattr(state, "audit_writer", None)
        self.record = AccessRecord(
            interaction,
            self.method,
            self.path,
            query,
            address=request.client.host if request.client else None,
            request_id=getattr(request.state, "request_id", None),
        )
        self.state: RequestState | None = None
        self._refusals: list[Decision] = []
        #: {StudyInstanceUID: "ImagingStudy/<id>/_history/<n>" or None} of the studies looked up
        self.versions: dict[str, str | None] = {}

    async def admit(self, kind_path: str) -> tuple[Target, Principal]:
        """Classify the request (`kind_path` below the DICOMweb root, or `/wado`) and apply the
        endpoint rule for its interaction. Raises: InvalidInput, Unauthenticated, Forbidden."""
        target = parse_target(self.method, kind_path, self.query)
        interaction = {"qido": "search", "stow": "create"}.get(target.kind, "read")
        self.record.interaction = interaction
        return target, await self.enter(Action(interaction, "ImagingStudy"))

    async def enter(self, action: Action) -> Principal:
        """Authenticate and apply the endpoint rule. Raises: Unauthenticated, Forbidden."""
        if self.verifier is None:
            principal = ANONYMOUS
        else:
            token = bearer_token(self.request.headers.get("authorization"))
            seen = verified_tokens(self.verifier)
            found = seen.get(token)
            if found is not None:
                principal = found
            elif self.verifier.needs_fetch(token):  # keys to fetch: off the event loop
                principal = seen.put(token, await asyncio.to_thread(self.verifier.verify, token))
            else:  # ~0.1 ms of signature check: a thread hop would cost as much again
                principal = seen.put(token, self.verifier.verify(token))
            if self.introspector is not None and not await asyncio.to_thread(self.introspector.active, token):
                raise Unauthenticated("the token is no longer active (revoked or logged out)")
        self.record.principal = principal
        self.state = RequestState(principal, action, list(self.query))
        if self.guard is not None:
            headers = {k.lower(): v for k, v in self.request.headers.items()}
            await self.guard.before(self.state, headers, b"")
            self.record.break_glass_reason = self.state.break_glass_reason
        return principal

    async def subjects(self, uids: Sequence[str]) -> dict[str, str | None]:
        """{StudyInstanceUID: "Patient/<id>" or None (not in the record)}; the ImagingStudies'
        versions are kept in `versions` (None: not in the record, or ambiguous)."""

        def work() -> dict[str, str | None]:
            with self.store.unit_of_work() as uow:
                found = indexed_studies(uow.resources, uids, claims_memo(self.store))
            self.versions.update({u: found[u].version if u in found else None for u in uids})
            return {u: found[u].subject if u in found else None for u in uids}

        return await asyncio.to_thread(work)

    async def allowed(self, subjects: dict[str, str | None]) -> dict[str, bool]:
        """{StudyInstanceUID: may the caller see it}; notes the residents for the audit."""
        assert self.state is not None
        principal = self.state.principal
        pids = {ref.split("/", 1)[1] for ref in subjects.values() if ref}
        if principal.is_admin or self.guard is None:
            self.record.patients.update(pids)
            return dict.fromkeys(subjects, True)
        facts = await self.guard.facts(pids)
        decisions = {
            p: self.guard.decide(self.state, facts.get(p) or ResidentFacts(frozenset({p}))) for p in pids
        }
        self.record.break_glass_reason = self.state.break_glass_reason
        out = {}
        for uid, ref in subjects.items():
            decision = decisions.get(ref.split("/", 1)[1]) if ref else None
            out[uid] = bool(decision and decision.allowed)
            if out[uid] and ref:
                self.record.patients.add(ref.split("/", 1)[1])
        self._refusals = [d for d in decisions.values() if not d.allowed]
        return out

    async def require_study(self, study_uid: str) -> None:
        """Raises: Forbidden unless the caller may see this study's resident."""
        subjects = await self.subjects([study_uid])
        self.record.resources.append(f"ImagingStudy/{study_resource_id(study_uid)}")
        if (await self.allowed(subjects))[study_uid]:
            return
        if self._refusals:
            self._refusals[0].require()
        raise Forbidden("access refused by rule 'imaging-not-indexed': the study is not yet in the record")

    def finish(self, status: int, error: DomainError | None = None) -> None:
        """Queue the AuditEvent of this request (allowed or refused)."""
        self.record.status = status
        if error is not None:
            self.record.outcome_text = error.diagnostics
            marker = "rule '"
            if marker in error.diagnostics:
                self.record.rule = error.diagnostics.split(marker, 1)[1].split("'", 1)[0]
        if self.writer is not None:
            self.writer.submit(build_audit_event(self.record, self.settings.audit.site))


_UID = r"(?=[0-9.]{1,64}(?:/|$))[0-9]+(?:\.[0-9]+)*"  # PS3.5 §9.1: no empty, "." or ".." part
_BULK = re.compile(
    rf"^/dicom-web/studies/{_UID}(?:/series/{_UID}(?:/instances/{_UID})?)?"
    r"(?:/frames/[0-9]+(?:,[0-9]+)*|/rendered|/metadata)?$"
)
_WADO_URI_KEYS = ("requestType", "studyUID", "seriesUID", "objectUID")


def kind_path_of(path: str, query: Sequence[tuple[str, str]]) -> str:
    """The path below the DICOMweb root (`/dicom-web/studies/1.2` -> `/studies/1.2`), or `/wado`,
    for a request nginx may pass to Orthanc as it is: only bulk WADO paths built of well-formed
    UIDs (so the gate and Orthanc cannot read different studies out of one URI) and WADO-URI
    with each UID given once. Raises: InvalidInput."""
    if path == "/wado":
        keys = [k for k, _ in query]
        if any(keys.count(k) > 1 for k in _WADO_URI_KEYS):
            raise InvalidInput("WADO-URI names each of requestType, studyUID, seriesUID, objectUID once")
        return path
    if _BULK.match(path):
        return path[len("/dicom-web") :]
    raise InvalidInput(f"not a bulk DICOMweb resource: {path[:200]}")


def refusal(error: DomainError) -> Response:
    """The gate's answer to a refused or failed decision (module docstring)."""
    status = status_for(error)
    document = outcome(error.issues)
    headers = {OUTCOME_HEADER: json.dumps(document, ensure_ascii=True, separators=(",", ":"))}
    if status == 401:  # RFC 6750 §3; nginx passes it on with the 401
        headers["WWW-Authenticate"] = 'Bearer realm="hie"'
    body = json.dumps(document, ensure_ascii=False).encode()
    return Response(body, status_code=status, media_type=FHIR_JSON, headers=headers)


async def decide_bulk(gate: DicomwebGate) -> str | None:
    """The decision for one bulk retrieval (WADO-RS/WADO-URI) named by `gate`'s original
    request: the same `admit` + `require_study` as the exchange's route. Returns the version of
    the ImagingStudy the decision read ("ImagingStudy/<id>/_history/<n>"; None when the study
    is not in the record, which only hie-admin may retrieve). Raises: InvalidInput,
    Unauthenticated, Forbidden (also for QIDO-RS/STOW-RS: those stay on the exchange's routes)."""
    target, _ = await gate.admit(kind_path_of(gate.path, gate.query))
    if target.kind not in BULK_KINDS:
        raise Forbidden(
            "access refused by rule 'dicomweb-gate-bulk-only': QIDO-RS and STOW-RS are served by the "
            "exchange's own /dicom-web routes, not through the gate"
        )
    assert target.study is not None
    await gate.require_study(target.study)
    return gate.versions.get(target.study)


def add_gate_routes(router: APIRouter, settings: HieSettings, store: Store) -> None:
    """Add `GET /_internal/dicomweb-auth` (module docstring) to `router`: a plain Starlette route
    (no FastAPI parameter or dependency machinery: it reads only headers), whose AuditEvent is
    queued once the answer is sent (`_answer`)."""
    secret = settings.imaging.gate_secret

    async def dicomweb_auth(request: Request) -> Response:
        if secret is None:
            raise NotFound(f"no such endpoint: GET {GATE_PATH}")
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not secrets.compare_digest(given, secret.get_secret_value().encode()):
            gate = DicomwebGate(request, settings, store, "read")
            error = Forbidden("access refused by rule 'dicomweb-gate-secret': not called by the proxy")
            log.warning("DICOMweb gate called without the proxy's secret from %s", gate.record.address)
            return _answer(gate, refusal(error), error)
        uri = urlsplit(request.headers.get("x-original-uri", ""))
        method = request.headers.get("x-original-method", "GET").upper()
        gate = DicomwebGate(request, settings, store, "read", (method, unquote(uri.path), uri.query))
        try:
            version = await decide_bulk(gate)
        except DomainError as exc:
            return _answer(gate, refusal(exc), exc)
        headers = {"Cache-Control": "no-store"}
        if version is not None:  # nginx's cache key; without it nginx bypasses its cache
            headers[VERSION_HEADER] = version
        return _answer(gate, Response(status_code=204, headers=headers))

    router.add_route(GATE_PATH, dicomweb_auth, methods=["GET"], include_in_schema=False)


def _answer(gate: DicomwebGate, response: Response, error: DomainError | None = None) -> Response:
    """`response`, with the request's AuditEvent queued once it is sent (`AuditedAnswer`)."""
    status = 200 if response.status_code == 204 else response.status_code
    return AuditedAnswer(response, functools.partial(gate.finish, status, error))


class AuditedAnswer(Response):
    """Sends `inner`, then calls `after` (queues the AuditEvent) — also when sending failed or
    was cancelled, so no decided request goes unaudited. The event is queued after the answer,
    as the exchange's FHIR reads queue theirs (`AuditWriter`, docs/security.md): the decision is
    made and recorded before any byte, but the writer's unit of work does not compete with
    sending the answer for the interpreter (docs/imaging.md, "The gate's latency")."""

    def __init__(self, inner: Response, after: Callable[[], None]) -> None:
        self.inner, self.after = inner, after
        self.status_code, self.background = inner.status_code, None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.inner(scope, receive, send)
        finally:
            self.after()
