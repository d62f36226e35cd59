"""DICOMweb in the exchange: a guarded, audited, streaming proxy to Orthanc, and STOW-RS.

Routes (at the root, beside `/fhir`; `imaging_router(settings, store, client)` is passed to
`create_app(..., root_routers=[...])`):
- `GET /dicom-web/studies|series|instances[...]` QIDO-RS (DICOM PS3.18 §10.6),
- `GET /dicom-web/studies/{uid}[/series/{uid}[/instances/{uid}]][/metadata|/frames/..|/rendered]`
  WADO-RS (§10.4), `GET /wado?requestType=WADO&studyUID=..` WADO-URI (§9),
- `POST /dicom-web/studies[/{uid}]` STOW-RS (§10.5),
- `/viewer/...` the web viewer behind the same gate (`hie_server.operations.imaging_viewer`).

- `GET /_internal/dicomweb-auth`, nginx's `auth_request` for the fast path (nginx streams WADO
  bytes from Orthanc after the same decision, `hie_server.operations.dicomweb_gate`).

Every request goes through the same rules as the FHIR API (`hie_server.auth`), held by
`DicomwebGate` (`hie_server.operations.dicomweb_gate`, shared with the nginx gate): the Bearer
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
from hie_server.auth import write_decision
from hie_server.auth.principal import Principal
from hie_server.auth.resolver import resident_facts
from hie_server.errors import status_for
from hie_server.operations.dicomweb_gate import DicomwebGate, add_gate_routes
from hie_server.operations.imaging_relay import RelayResponse, open_after_check
from hie_server.operations.imaging_viewer import add_viewer_routes
from hie_server.settings import HieSettings
from imaging import (
    OrthancClient,
    Target,
    Upstream,
    link_subject,
    qido_query,
    read_dataset,
    stow_parts,
    study_resource_id,
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
            target, principal = await gate.admit(kind_path)
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
    add_gate_routes(router, settings, store)  # nginx auth_request: the same gate for the fast path

    return router
