"""The imaging bridge: follows Orthanc's `/changes` feed and keeps one ImagingStudy per study.

Exactly once, across restarts: the feed position (the last processed sequence number) is a
`Basic` resource in the store (`cursor_id`), and each `StableStudy` change is written in ONE
unit of work together with the new position, so a crash leaves either both or neither. The
cursor is updated with `if_match` on its version, so a second bridge on the same store gets a
VersionConflict instead of indexing the same change twice. Ids derive from the UID, so a
study changed later (new instances, a new StableStudy) updates its one ImagingStudy.

Per study (`imaging.linking`): linked to the resident when certain, else a review `Task`
(tag `urn:qyhie:imaging|link-review`) and no ImagingStudy; linked to its order when the
ServiceRequest is there, else tagged `order-pending`. `retry_pending()` retries both (the
patient or the order may arrive after the images); `run_forever` does it every few polls, and
every `reconcile_seconds` withdraws the studies deleted in Orthanc (`imaging.reconcile`; a
review Task whose study is gone is cancelled in `retry_pending`).

May import: `ehr_store`, `imaging.*`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ehr_store import NotFound, ResourceRepository, Store, json_loads
from imaging.linking import SubjectLink, find_order, link_subject
from imaging.mapping import (
    ENDPOINT_ID,
    IMAGING_TAG_SYSTEM,
    VIEWER_ENDPOINT_ID,
    StudySnapshot,
    dicomweb_endpoint,
    imaging_study,
    study_identifier,
    study_resource_id,
    viewer_endpoint,
)
from imaging.orthanc import OrthancClient
from imaging.reconcile import ReconcileReport, cancel_review, reconcile
from imaging.settings import ImagingSettings

log = logging.getLogger("imaging.bridge")
Json = dict[str, Any]
CURSOR_URL = "urn:qyhie:fhir:extension:orthanc-changes-seq"
TASK_CODE = {"system": "urn:qyhie:task", "code": "imaging-link-review", "display": "Link an imaging study"}


@dataclass
class BridgeReport:
    """What one `run_once` did: changes read, studies indexed, studies sent to review, position."""

    changes: int = 0
    indexed: list[str] = field(default_factory=list)
    review: list[str] = field(default_factory=list)
    last_seq: int = 0


def cursor_id(name: str) -> str:
    return f"imaging-cursor-{name}"


def review_task_id(study_uid: str) -> str:
    return "dcmrev-" + hashlib.sha1(study_uid.encode("ascii", "replace")).hexdigest()


def review_task(snap: StudySnapshot, reason: str) -> Json:
    """A Task asking a person to link the study (no ImagingStudy is made until then)."""
    inputs = [
        ("StudyInstanceUID", snap.study_uid),
        ("OrthancID", snap.orthanc_id),
        ("PatientID", snap.patient_id),
        ("IssuerOfPatientID", snap.issuer),
        ("PatientName", str(snap.patient_name)),
        ("AccessionNumber", snap.accession),
    ]
    task: Json = {
        "resourceType": "Task",
        "id": review_task_id(snap.study_uid),
        "meta": {"tag": [{"system": IMAGING_TAG_SYSTEM, "code": "link-review"}]},
        "identifier": [study_identifier(snap.study_uid)],
        "status": "requested",
        "intent": "proposal",
        "code": {"coding": [TASK_CODE]},
        "businessStatus": {"text": reason},
        "authoredOn": datetime.now(UTC).isoformat(timespec="seconds"),
        "input": [{"type": {"text": k}, "valueString": v} for k, v in inputs if v],
    }
    if snap.issuer:
        task["meta"]["source"] = f"urn:qyhie:facility:{snap.issuer}"
    return task


class ImagingBridge:
    """See module docstring. `name` for the server runtime's BackgroundService protocol."""

    name = "imaging bridge"

    def __init__(self, store: Store, client: OrthancClient, settings: ImagingSettings) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self._cursor_version: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._endpoint_checked = False

    # -- cursor ----------------------------------------------------------------------------
    def read_cursor(self) -> int:
        """The last processed sequence number (0 before the first run)."""
        with self.store.unit_of_work() as uow:
            try:
                stored = uow.resources.read("Basic", cursor_id(self.settings.cursor_name))
            except NotFound:
                self._cursor_version = None
                return 0
        self._cursor_version = stored.version_id
        doc = json_loads(stored.content)
        return int(next(e["valueInteger"] for e in doc.get("extension", []) if e.get("url") == CURSOR_URL))

    def _write_cursor(self, repo: ResourceRepository, seq: int) -> None:
        doc: Json = {
            "resourceType": "Basic",
            "id": cursor_id(self.settings.cursor_name),
            "code": {"coding": [{"system": IMAGING_TAG_SYSTEM, "code": "changes-cursor"}]},
            "extension": [{"url": CURSOR_URL, "valueInteger": seq}],
        }
        stored, _ = repo.update("Basic", doc["id"], doc, if_match=self._cursor_version)
        self._cursor_version = stored.version_id

    def set_cursor(self, seq: int) -> None:
        """Move the feed position (e.g. `hie imaging bridge --from-now` skips the history).
        Raises: VersionConflict when another bridge moved it meanwhile."""
        self.read_cursor()
        with self.store.unit_of_work(write=True) as uow:
            self._write_cursor(uow.resources, seq)
            uow.commit()

    # -- indexing ---------------------------------------------------------------------------
    def _ensure_endpoint(self) -> None:
        wanted = [(ENDPOINT_ID, dicomweb_endpoint(self.settings.dicomweb_url))]
        if self.settings.viewer_url:
            wanted.append((VIEWER_ENDPOINT_ID, viewer_endpoint(self.settings.viewer_url)))
        with self.store.unit_of_work(write=True) as uow:
            for endpoint_id, doc in wanted:
                current = uow.resources.read_many([("Endpoint", endpoint_id)]).get(("Endpoint", endpoint_id))
                if (
                    current is None
                    or current.deleted
                    or json_loads(current.content).get("address") != doc["address"]
                ):
                    uow.resources.update("Endpoint", endpoint_id, doc)
            uow.commit()

    async def _snapshot(self, orthanc_id: str) -> StudySnapshot:
        """The study as Orthanc holds it now, every instance with its SOP class (those of the
        instances already in the ImagingStudy reused). Raises: NotFound, Unavailable."""
        study = await self.client.study(orthanc_id)
        uid = str(study.get("MainDicomTags", {}).get("StudyInstanceUID", ""))
        known = await asyncio.to_thread(self._known_sop_classes, uid)
        study["SopClasses"] = await self.client.sop_classes(study, known)
        return StudySnapshot.from_orthanc(study)

    def _known_sop_classes(self, study_uid: str) -> dict[str, str]:
        """{SOPInstanceUID: SOPClassUID} of the study's ImagingStudy as indexed before."""
        rid = study_resource_id(study_uid)
        with self.store.unit_of_work() as uow:
            stored = uow.resources.read_many([("ImagingStudy", rid)]).get(("ImagingStudy", rid))
        if stored is None or stored.deleted:
            return {}
        return {
            str(i["uid"]): str(i["sopClass"]["code"]).removeprefix("urn:oid:")
            for s in json_loads(stored.content).get("series", [])
            for i in s.get("instance", [])
            if i.get("uid") and (i.get("sopClass") or {}).get("code")
        }

    def _index(self, repo: ResourceRepository, snap: StudySnapshot) -> SubjectLink:
        link = link_subject(repo, snap, self.settings.mrn_systems)
        study_id = study_resource_id(snap.study_uid)
        task_id = review_task_id(snap.study_uid)
        if link.subject is None:
            existing = repo.read_many([("ImagingStudy", study_id)]).get(("ImagingStudy", study_id))
            if existing is None or existing.deleted:  # a study linked before keeps its link
                repo.update("Task", task_id, review_task(snap, link.reason))
            return link
        order = find_order(repo, snap.accession, snap.issuer, link.subject)
        resource = imaging_study(
            snap,
            link.subject,
            order,
            pending_order=bool(snap.accession and not order),
            viewer=bool(self.settings.viewer_url),
        )
        repo.update("ImagingStudy", study_id, resource)
        task = repo.read_many([("Task", task_id)]).get(("Task", task_id))
        if task is not None and not task.deleted:
            doc = json_loads(task.content)
            if doc.get("status") == "requested":
                doc.update(status="completed", focus={"reference": f"ImagingStudy/{study_id}"})
                repo.update("Task", task_id, doc)
        return link

    def _commit_study(self, snap: StudySnapshot | None, seq: int) -> SubjectLink | None:
        with self.store.unit_of_work(write=True) as uow:
            link = self._index(uow.resources, snap) if snap is not None else None
            self._write_cursor(uow.resources, seq)
            uow.commit()
        return link

    async def run_once(self, max_changes: int | None = None) -> BridgeReport:
        """Process the feed from the stored position until drained (or `max_changes` changes).

        Raises: Unavailable (Orthanc down: nothing after the last committed change is lost),
        VersionConflict (another bridge advanced the same cursor)."""
        since = await asyncio.to_thread(self.read_cursor)
        if not self._endpoint_checked:
            await asyncio.to_thread(self._ensure_endpoint)
            self._endpoint_checked = True
        report = BridgeReport(last_seq=since)
        while max_changes is None or report.changes < max_changes:
            limit = self.settings.batch_size
            if max_changes is not None:
                limit = min(limit, max_changes - report.changes)
            page = await self.client.changes(since, limit)
            for change in page.changes:
                snap = None
                if change.change_type == "StableStudy":
                    try:
                        snap = await self._snapshot(change.orthanc_id)
                    except NotFound:
                        snap = None  # deleted since: nothing to index
                if snap is not None or change is page.changes[-1]:
                    link = await asyncio.to_thread(self._commit_study, snap, change.seq)
                    if snap is not None and link is not None:
                        (report.indexed if link.subject else report.review).append(snap.study_uid)
                since = report.last_seq = change.seq
                report.changes += 1
            if page.done or not page.changes:
                break
        return report

    # -- late links -------------------------------------------------------------------------
    def _retry_orders(self) -> int:
        done = 0
        with self.store.unit_of_work(write=True) as uow:
            repo = uow.resources
            pending = repo.search(
                "ImagingStudy", [("_tag", f"{IMAGING_TAG_SYSTEM}|order-pending"), ("_count", "200")]
            )
            for stored in pending.matches:
                doc = json_loads(stored.content)
                acsn = next((i for i in doc.get("identifier", []) if _is_acsn(i)), None)
                if acsn is None:
                    continue
                issuer = (
                    str(acsn.get("system", "")).removeprefix("urn:qyhie:facility:").removesuffix(":accession")
                )
                order = find_order(
                    repo,
                    str(acsn["value"]),
                    "" if issuer == "unknown" else issuer,
                    doc["subject"]["reference"],
                )
                if order:
                    doc["basedOn"] = [{"reference": order}]
                    meta = doc.get("meta", {})
                    meta["tag"] = [t for t in meta.get("tag", []) if t.get("code") != "order-pending"]
                    doc["meta"] = {k: v for k, v in meta.items() if k in ("source", "tag") and v}
                    repo.update("ImagingStudy", doc["id"], doc, if_match=stored.version_id)
                    done += 1
            uow.commit()
        return done

    def _cancel_review(self, task_id: str) -> None:
        with self.store.unit_of_work(write=True) as uow:
            if cancel_review(uow.resources, task_id):
                uow.commit()

    def _pending_reviews(self) -> list[tuple[str, str]]:
        with self.store.unit_of_work() as uow:
            found = uow.resources.search(
                "Task",
                [("_tag", f"{IMAGING_TAG_SYSTEM}|link-review"), ("status", "requested"), ("_count", "200")],
            )
        ids = []
        for stored in found.matches:
            inputs = {
                i["type"]["text"]: i.get("valueString") for i in json_loads(stored.content).get("input", [])
            }
            if inputs.get("OrthancID"):
                ids.append((stored.id, str(inputs["OrthancID"])))
        return ids

    def _relink(self, snap: StudySnapshot) -> SubjectLink:
        with self.store.unit_of_work(write=True) as uow:
            link = self._index(uow.resources, snap)
            uow.commit()
        return link

    async def retry_pending(self) -> tuple[int, int]:
        """Retry studies waiting for their resident and for their order.
        Returns (studies now linked to a resident, studies now linked to an order)."""
        linked = 0
        for task_id, orthanc_id in await asyncio.to_thread(self._pending_reviews):
            try:
                snap = await self._snapshot(orthanc_id)
            except NotFound:  # deleted in Orthanc: nothing left to link
                await asyncio.to_thread(self._cancel_review, task_id)
                continue
            if (await asyncio.to_thread(self._relink, snap)).subject:
                linked += 1
        return linked, await asyncio.to_thread(self._retry_orders)

    async def reconcile(self) -> ReconcileReport:
        """Withdraw the ImagingStudies of studies deleted in Orthanc (`imaging.reconcile`).
        Raises: Unavailable."""
        return await reconcile(self.store, self.client)

    # -- background service -----------------------------------------------------------------
    async def run_forever(self, retry_every: int = 10) -> None:
        """Poll until cancelled; errors are logged and retried after `poll_seconds`."""
        polls = 0
        reconciled = time.monotonic()
        while True:
            started = time.monotonic()
            try:
                report = await self.run_once()
                if report.indexed or report.review:
                    log.info("indexed %d studies, %d to review", len(report.indexed), len(report.review))
                polls += 1
                if polls % retry_every == 1:
                    await self.retry_pending()
                every = self.settings.reconcile_seconds
                if every and started - reconciled >= every:
                    reconciled = started
                    await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("imaging bridge: %s", exc)
            await asyncio.sleep(max(0.0, self.settings.poll_seconds - (time.monotonic() - started)))

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.client.close()


def _is_acsn(identifier: Json) -> bool:
    return any(c.get("code") == "ACSN" for c in (identifier.get("type") or {}).get("coding", []))
