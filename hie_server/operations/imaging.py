"""DICOMweb in the exchange: a guarded, audited, streaming proxy to Orthanc, and STOW-RS.

Routes (at the root, beside `/fhir`; `imaging_router(settings, store, client)` is passed to
`create_app(..., root_routers=[...])`):
- `GET /dicom-web/studies|series|instances[...]` QIDO-RS (DICOM PS3.18 §10.6),
- `GET /dicom-web/studies/{uid}[/series/{uid}[/instances/{uid}]][/metadata|/frames/..|/rendered]`
  WADO-RS (§10.4), `GET /wado?requestType=WADO&studyUID=..` WADO-URI (§9),
- `POST /dicom-web/studies[/{uid}]` STOW-RS (§10.5),
- `/viewer/...` the web viewer behind the same gate (`hie_server.operations.imaging_viewer`).

Every request goes through the same rules as the FHIR API (`hie_server.auth`): the Bearer
token is verified by the app's `TokenVerifier`; the endpoint rule is `authorize(principal,
Action(read|search|create, "ImagingStudy"))` via the app's `AccessGuard.before` (so
break-glass works the same); the resident is the `subject` of the study's ImagingStudy, and
`AccessGuard.decide` says whether the caller may see them (a specialist needs an active
referral/consultation to their facility and the resident's consent). A study not yet in the
record is shown to hie-admin only. QIDO-RS answers are filtered per study. Every request,
allowed or refused, becomes an AuditEvent (`AuditWriter`). Without an identity provider the
caller is the loopback-only anonymous admin, as for `/fhir`.

WADO-RS/WADO-URI answers are relayed from Orthanc as they arrive (`imaging_relay.RelayResponse`:
whatever the socket delivered, undecoded and uncopied, no whole study in memory; Content-Length
passed through when Orthanc sends one; the relay stops when the client goes away). The request
to Orthanc is sent while the resident check runs (`open_after_check`); a refusal drops it before
any byte reaches the caller. Orthanc builds the URLs in its answers from the `Forwarded` header
we send, so they point at the exchange.

May import: fastapi/starlette, `ehr_store`, `imaging`, `hie_server.*`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from ehr_store import DomainError, Forbidden, Store, TooCostly, Unavailable
from hie_server.auth import (
    AccessRecord,
    Action,
    Decision,
    ResidentFacts,
    audit_event,
    bearer_token,
    write_decision,
)
from hie_server.auth.guard import RequestState
from hie_server.auth.middleware import ANONYMOUS
from hie_server.auth.principal import Principal
from hie_server.auth.resolver import resident_facts
from hie_server.errors import status_for
from hie_server.operations.imaging_relay import RelayResponse, open_after_check
from hie_server.operations.imaging_viewer import add_viewer_routes
from hie_server.settings import HieSettings
from imaging import (
    OrthancClient,
    Target,
    Upstream,
    link_subject,
    parse_target,
    qido_query,
    read_dataset,
    stow_parts,
    study_resource_id,
    study_subjects,
)
from imaging.dicomweb import UID_KEY, snapshot_of_dataset

Json = dict[str, Any]
PASS_HEADERS = (
    "content-type",
    "content-length",
    "etag",
    "last-modified",
    "cache-control",
    "content-location",
)
STUDY_UID_TAG = "0020000D"


class DicomwebGate:
    """Authentication, the access rules and audit for one DICOMweb request (module docstring)."""

    def __init__(self, request: Request, settings: HieSettings, store: Store, interaction: str) -> None:
        self.request, self.settings, self.store = request, settings, store
        state = request.app.state
        self.verifier = getattr(state, "token_verifier", None)
        self.guard = getattr(state, "access_guard", None)
        self.writer = getattr(state, "audit_writer", None)
        self.record = AccessRecord(
            interaction,
            request.method,
            request.url.path,
            request.url.query,
            address=request.client.host if request.client else None,
            request_id=getattr(request.state, "request_id", None),
        )
        self.state: RequestState | None = None
        self._refusals: list[Decision] = []

    async def enter(self, action: Action) -> Principal:
        """Authenticate and apply the endpoint rule. Raises: Unauthenticated, Forbidden."""
        if self.verifier is None:
            principal = ANONYMOUS
        else:
            token = bearer_token(self.request.headers.get("authorization"))
            principal = await asyncio.to_thread(self.verifier.verify, token)
        self.record.principal = principal
        self.state = RequestState(principal, action, list(self.request.query_params.multi_items()))
        if self.guard is not None:
            headers = {k.lower(): v for k, v in self.request.headers.items()}
            await self.guard.before(self.state, headers, b"")
            self.record.break_glass_reason = self.state.break_glass_reason
        return principal

    async def subjects(self, uids: Sequence[str]) -> dict[str, str | None]:
        def work() -> dict[str, str | None]:
            with self.store.unit_of_work() as uow:
                return study_subjects(uow.resources, uids)

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
            self.writer.submit(audit_event(self.record, self.settings.audit.site))


def _forwarded(request: Request, settings: HieSettings) -> str:
    """RFC 7239 `Forwarded` naming the exchange as the clients see it."""
    if settings.http.public_base_url:
        parts = urlsplit(settings.http.public_base_url)
        return f"host={parts.netloc};proto={parts.scheme}"
    return f"host={request.headers.get('host', request.url.netloc)};proto={request.url.scheme}"


async def _relay(upstream: Upstream) -> Response:
    """The WADO answer as it arrives (`RelayResponse`); Orthanc's 404 becomes an empty one."""
    if upstream.status_code == 404:
        await upstream.aclose()
        return JSONResponse([], status_code=404)
    kept = {k: v for k, v in upstream.headers.items() if k.lower() in PASS_HEADERS}
    return RelayResponse(upstream, kept)


async def _qido(
    client: OrthancClient, gate: DicomwebGate, target: Target, query: list[tuple[str, str]], fwd: str
) -> Response:
    plan = qido_query(query)
    path = gate.request.url.path
    headers = {"Forwarded": fwd}
    if not plan.find:
        results = await client.qido(path, plan.on_url, headers)
    else:  # filters Orthanc cannot take on its URL: resolve UIDs by /tools/find, then QIDO per UID
        find = dict(plan.find)
        if target.study:
            find["StudyInstanceUID"] = target.study
        if target.series:
            find["SeriesInstanceUID"] = target.series
        key = UID_KEY[target.level]
        results = []
        for hit in await client.find(target.level, find, limit=plan.limit):
            uid = str(hit.get("MainDicomTags", {}).get(key, ""))
            base = [(k, v) for k, v in plan.on_url if k != key]
            results += await client.qido(path, [*base, (key, uid)], headers)
    uids = [str(r.get(STUDY_UID_TAG, {}).get("Value", [target.study or ""])[0]) for r in results]
    allowed = await gate.allowed(await gate.subjects(uids)) if uids else {}
    kept = [r for r, uid in zip(results, uids, strict=True) if allowed.get(uid)]
    gate.record.resources.extend(
        f"ImagingStudy/{study_resource_id(u)}" for u in dict.fromkeys(uids) if allowed.get(u)
    )
    return JSONResponse(kept[: plan.limit], media_type="application/dicom+json")


async def _stow(client: OrthancClient, gate: DicomwebGate, principal: Principal, fwd: str) -> Response:
    request = gate.request
    limit = gate.settings.http.max_body_bytes
    body = await request.body()
    if len(body) > limit:
        raise TooCostly(f"request body of {len(body)} bytes exceeds the limit of {limit} bytes")
    snaps = [
        snapshot_of_dataset(read_dataset(p, stop_before_pixels=True))
        for p in stow_parts(body, request.headers.get("content-type", ""))
    ]
    if not principal.is_admin:
        await asyncio.to_thread(_check_stow_writes, gate, principal, snaps)
    upstream = await client.open(
        "POST",
        "/dicom-web/studies",
        (),
        {
            "Content-Type": request.headers["content-type"],
            "Accept": "application/dicom+json",
            "Forwarded": fwd,
        },
        body,
    )
    try:
        answer = await upstream.aread()
    finally:
        await upstream.aclose()
    if upstream.status_code >= 500:
        raise Unavailable(f"Orthanc answered {upstream.status_code} to STOW-RS")
    gate.record.resources.extend(f"ImagingStudy/{study_resource_id(s.study_uid)}" for s in snaps)
    media = upstream.headers.get("content-type", "application/dicom+json")
    return Response(answer, status_code=upstream.status_code, media_type=media)


def _check_stow_writes(gate: DicomwebGate, principal: Principal, snaps: Sequence[Any]) -> None:
    """A feed or clinician stores only as their own facility (IssuerOfPatientID) and, when the
    study links to a resident, only for a resident they may write for. Raises: Forbidden."""
    with gate.store.unit_of_work() as uow:
        for snap in snaps:
            if snap.issuer != principal.facility:
                raise Forbidden(
                    "access refused by rule 'feed-own-facility': STOW-RS stores only your own facility's "
                    f"studies (IssuerOfPatientID {principal.facility!r}, not {snap.issuer!r})"
                )
            link = link_subject(uow.resources, snap, gate.settings.imaging.mrn_systems)
            if link.subject and gate.guard is not None:
                pid = link.subject.split("/", 1)[1]
                facts = resident_facts(uow.resources, {pid}).get(pid)
                resource = {
                    "resourceType": "ImagingStudy",
                    "subject": {"reference": link.subject},
                    "meta": {"source": f"urn:qyhie:facility:{snap.issuer}"},
                }
                write_decision(principal, resource, facts).require()
                gate.record.patients.add(pid)


def imaging_router(settings: HieSettings, store: Store, client: OrthancClient) -> APIRouter:
    """The DICOMweb routes (module docstring) bound to `store` and `client`."""
    router = APIRouter(tags=["DICOMweb"])

    async def handle(request: Request, path: str, kind_path: str) -> Response:
        query = list(request.query_params.multi_items())
        gate = DicomwebGate(request, settings, store, "search")
        try:
            target = parse_target(request.method, kind_path, query)
            interaction = {"qido": "search", "stow": "create"}.get(target.kind, "read")
            gate.record.interaction = interaction
            principal = await gate.enter(Action(interaction, "ImagingStudy"))
            fwd = _forwarded(request, settings)
            if target.kind == "stow":
                response = await _stow(client, gate, principal, fwd)
            elif target.kind == "qido":
                response = await _qido(client, gate, target, query, fwd)
            else:
                assert target.study is not None
                accept = request.headers.get("accept", "*/*")
                safe = [(k, v) for k, v in query if k != "studyUID" or target.kind == "wado-uri"]
                opening = client.open("GET", path, safe, {"Accept": accept, "Forwarded": fwd})
                response = await _relay(await open_after_check(opening, gate.require_study(target.study)))
        except DomainError as exc:
            gate.finish(status_for(exc), exc)
            raise
        gate.finish(response.status_code)
        return response

    @router.api_route("/dicom-web/{rest:path}", methods=["GET", "POST"], include_in_schema=True)
    async def dicomweb(rest: str, request: Request) -> Response:
        return await handle(request, f"/dicom-web/{rest}", f"/{rest}")

    @router.get("/wado")
    async def wado_uri(request: Request) -> Response:
        return await handle(request, "/wado", "/wado")

    add_viewer_routes(router, settings, store, client)

    return router
