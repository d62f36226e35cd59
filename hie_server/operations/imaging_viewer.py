"""A web viewer for a study, behind the exchange's rules: Orthanc's Web Viewer plugin (Debian
`orthanc-webviewer`), reached only through the exchange.

- `GET /viewer/IHEInvokeImageDisplay?requestType=STUDY&studyUID=<uid>[&seriesUID=<uid>]`
  (IHE RAD Invoke Image Display, RAD-106): the Bearer token, the endpoint rule
  (`Action(read, "ImagingStudy")`, break-glass as everywhere) and the resident rule on the
  study's ImagingStudy subject, exactly as for WADO-RS (`DicomwebGate`); audited, allowed or
  refused. Answer: `303 See Other` to `/viewer/t/<ticket>/web-viewer/app/viewer.html?series=..`
  (the study's first series by SeriesNumber, or `seriesUID`).
- `GET /viewer/t/<ticket>/...`: the viewer's page, scripts, series geometry and images,
  relayed from Orthanc. A browser cannot put a Bearer token on `<script>` and image loads, so
  the entry hands out a *ticket*: an unguessable id (192 random bits) of a server-side viewer
  session bound to the caller and to that one study, for `viewer_ticket_seconds` (default 15
  min). Each request under it may touch only that study's series and instances (checked
  against Orthanc's list of the study's instances); anything else is 403. The series request
  (the one answer naming the patient) is audited as a read by the ticket's holder, with the
  ticket masked in the audited path; refusals are audited too.

A web front end (the workbench) calls the entry with the user's token, does not follow the
redirect, and sends the browser to its `Location`. The ImagingStudy links here through
`Endpoint/dicom-viewer` (connectionType `ihe-iid`, `imaging.viewer_endpoint`).

May import: fastapi/starlette, `ehr_store`, `imaging`, `hie_server.*`.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from ehr_store import DomainError, Forbidden, InvalidInput, NotFound, Store
from hie_server.auth import Action, audit_event
from hie_server.auth.audit import AccessRecord
from hie_server.auth.principal import Principal
from hie_server.errors import status_for
from hie_server.operations.imaging_relay import RelayResponse
from hie_server.settings import HieSettings
from imaging import OrthancClient, study_resource_id

ORTHANC_ID = r"[0-9a-f]{8}(?:-[0-9a-f]{8}){4}"
_STATIC = re.compile(r"^web-viewer/(?:app|libs)/[A-Za-z0-9._/-]+$")
_SERIES = re.compile(rf"^web-viewer/(?:series|is-stable-series)/(?P<id>{ORTHANC_ID})$")
_IMAGE = re.compile(rf"^web-viewer/instances/[a-z0-9]+-(?P<id>{ORTHANC_ID})_[0-9]+$")
_FILE = re.compile(rf"^instances/(?P<id>{ORTHANC_ID})/file$")
PASS_HEADERS = ("content-type", "content-length", "etag", "last-modified")
MEMBERS_SECONDS = 60.0


@dataclass(frozen=True)
class ViewerSession:
    """Who may view which study until when (monotonic seconds)."""

    principal: Principal
    study_uid: str
    orthanc_study: str
    patients: frozenset[str]
    expires: float


class ViewerSessions:
    """Server-side viewer sessions keyed by ticket (module docstring); at most `limit` live."""

    def __init__(self, ttl_seconds: float, limit: int = 10000) -> None:
        self.ttl, self.limit = ttl_seconds, limit
        self._live: dict[str, ViewerSession] = {}

    def open(self, principal: Principal, study_uid: str, orthanc_study: str, patients: set[str]) -> str:
        """A new ticket for `principal` to view one study."""
        now = time.monotonic()
        if len(self._live) >= self.limit:
            self._live = {t: s for t, s in self._live.items() if s.expires > now}
            while len(self._live) >= self.limit:
                self._live.pop(next(iter(self._live)))
        ticket = secrets.token_urlsafe(24)
        self._live[ticket] = ViewerSession(
            principal, study_uid, orthanc_study, frozenset(patients), now + self.ttl
        )
        return ticket

    def get(self, ticket: str) -> ViewerSession:
        """The live session of `ticket`. Raises: Forbidden (unknown or expired ticket)."""
        session = self._live.get(ticket)
        if session is None or session.expires <= time.monotonic():
            self._live.pop(ticket, None)
            raise Forbidden("access refused by rule 'viewer-ticket': unknown or expired viewer ticket")
        return session


class StudyMembers:
    """Orthanc ids of a study's series and instances, cached for `MEMBERS_SECONDS`."""

    def __init__(self, client: OrthancClient) -> None:
        self.client = client
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    async def of(self, orthanc_study: str) -> frozenset[str]:
        """Raises: NotFound (study gone from Orthanc), Unavailable."""
        hit = self._cache.get(orthanc_study)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        if len(self._cache) > 1000:
            self._cache.clear()
        ids: set[str] = set()
        for instance in await self.client.study_instance_index(orthanc_study):
            ids.update(instance)
        members = frozenset(ids)
        self._cache[orthanc_study] = (time.monotonic() + MEMBERS_SECONDS, members)
        return members


def _audit(request: Request, session: ViewerSession | None, status: int, error: DomainError | None) -> None:
    writer = getattr(request.app.state, "audit_writer", None)
    if writer is None:
        return
    path = re.sub(r"^/viewer/t/[^/]+", "/viewer/t/{ticket}", request.url.path)
    record = AccessRecord(
        "read", "GET", path, request.url.query, principal=session.principal if session else None
    )
    record.address = request.client.host if request.client else None
    record.status = status
    if session is not None:
        record.patients.update(session.patients)
        record.resources.append(f"ImagingStudy/{study_resource_id(session.study_uid)}")
    if error is not None:
        record.outcome_text = error.diagnostics
        record.rule = "viewer-ticket" if "viewer-ticket" in error.diagnostics else "viewer-study-only"
    settings: HieSettings = request.app.state.settings
    writer.submit(audit_event(record, settings.audit.site))


def add_viewer_routes(router: APIRouter, settings: HieSettings, store: Store, client: OrthancClient) -> None:
    """Add the viewer routes (module docstring) to `router` (the DICOMweb router)."""
    from hie_server.operations.dicomweb_gate import DicomwebGate  # same gate as WADO-RS

    sessions = ViewerSessions(settings.imaging.viewer_ticket_seconds)
    members = StudyMembers(client)

    @router.get("/viewer/IHEInvokeImageDisplay")
    async def invoke_image_display(request: Request) -> Response:
        gate = DicomwebGate(request, settings, store, "read")
        q = request.query_params
        try:
            if q.get("requestType") != "STUDY" or not q.get("studyUID"):
                raise InvalidInput("IHEInvokeImageDisplay needs requestType=STUDY and studyUID (IHE RAD-106)")
            study_uid = q["studyUID"]
            principal = await gate.enter(Action("read", "ImagingStudy"))
            await gate.require_study(study_uid)
            orthanc_study = await client.lookup_study(study_uid)
            if orthanc_study is None:
                raise NotFound(f"the images of study {study_uid} are not in the archive")
            series = await client.study_series(orthanc_study)
            wanted = [s for s in series if s[1] == q.get("seriesUID")] if q.get("seriesUID") else series
            if not wanted:
                raise NotFound("no such series in this study")
            ticket = sessions.open(principal, study_uid, orthanc_study, set(gate.record.patients))
        except DomainError as exc:
            gate.finish(status_for(exc), exc)
            raise
        gate.finish(303)
        target = f"/viewer/t/{ticket}/web-viewer/app/viewer.html?series={wanted[0][0]}"
        return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})

    @router.get("/viewer/t/{ticket}/{rest:path}")
    async def viewer_resource(ticket: str, rest: str, request: Request) -> Response:
        session: ViewerSession | None = None
        try:
            session = sessions.get(ticket)
            member = _SERIES.match(rest) or _IMAGE.match(rest) or _FILE.match(rest)
            if member is None and not _STATIC.match(rest):
                raise NotFound(f"the viewer has no {rest}")
            if member is not None and member["id"] not in await members.of(session.orthanc_study):
                raise Forbidden("access refused by rule 'viewer-study-only': not part of the ticket's study")
            query = [(k, v) for k, v in request.query_params.multi_items() if k in ("series", "_")]
            upstream = await client.open("GET", f"/{rest}", query)
        except DomainError as exc:
            _audit(request, session, status_for(exc), exc)
            raise
        if rest.startswith("web-viewer/series/"):
            _audit(request, session, upstream.status_code, None)
        kept = {k: v for k, v in upstream.headers.items() if k.lower() in PASS_HEADERS}
        kept.update({"Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer"})
        return RelayResponse(upstream, kept)
