"""Studies deleted in Orthanc, reflected in the record (reconciliation sweep).

Orthanc 1.10 does not write deletions to its `/changes` feed (a `DELETE /studies/{id}` leaves
no change behind), so the bridge cannot follow them; instead `reconcile` walks the record's
ImagingStudies in pages of `page_size`, asks Orthanc which of their StudyInstanceUIDs it
still holds (one `POST /tools/find` per page, UID list matching, DICOM PS3.4 §C.2.2.2.2), and
withdraws the others.

Status chosen per FHIR R4B ImagingStudy.status (http://hl7.org/fhir/R4B/valueset-imagingstudy-status.html):
`entered-in-error` - "withdrawn following a previous final release". Deleting a released study
from the archive is how a facility withdraws it (wrong patient, test images); `cancelled`
means the study was never started or completed, which is not the case. The resource stays
(history and audit keep what was seen), its `endpoint` is removed (nothing left to fetch) and
it is tagged `urn:qyhie:imaging|deleted-in-archive`. If the same study is stored again, its
next `StableStudy` rebuilds the ImagingStudy as `available`. A review Task of a study that is
gone is cancelled (`cancel_review`).

Safety: when a whole page of at least `SUSPICIOUS_PAGE` studies is missing, the sweep stops
without changing anything (an empty or wrong Orthanc, not a deletion) and reports it.

May import: `ehr_store`, `imaging.*`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from ehr_store import ResourceRepository, Store, VersionConflict, json_loads
from imaging.mapping import DICOM_UID_SYSTEM, IMAGING_TAG_SYSTEM
from imaging.orthanc import OrthancClient

log = logging.getLogger("imaging.reconcile")
Json = dict[str, Any]
DELETED_TAG = {"system": IMAGING_TAG_SYSTEM, "code": "deleted-in-archive"}
SUSPICIOUS_PAGE = 20


@dataclass
class ReconcileReport:
    """`checked` ImagingStudies, `withdrawn` StudyInstanceUIDs, `stopped` reason (or None)."""

    checked: int = 0
    withdrawn: list[str] = field(default_factory=list)
    stopped: str | None = None


def study_uid_of(doc: Json) -> str | None:
    """The StudyInstanceUID of an ImagingStudy (its `urn:dicom:uid` identifier)."""
    for ident in doc.get("identifier", []):
        if ident.get("system") == DICOM_UID_SYSTEM:
            return str(ident.get("value", "")).removeprefix("urn:oid:") or None
    return None


def withdrawn_study(doc: Json) -> Json:
    """The ImagingStudy `doc` marked as deleted in the archive (module docstring). Pure."""
    out = {k: v for k, v in doc.items() if k != "endpoint"}
    out["status"] = "entered-in-error"
    meta = {k: v for k, v in (doc.get("meta") or {}).items() if k in ("source", "tag", "security")}
    tags = [t for t in meta.get("tag", []) if t.get("code") not in ("order-pending", DELETED_TAG["code"])]
    meta["tag"] = [*tags, DELETED_TAG]
    out["meta"] = meta
    return out


def _page(store: Store, offset: int, size: int) -> tuple[list[tuple[str, Json, int]], bool]:
    with store.unit_of_work() as uow:
        found = uow.resources.search(
            "ImagingStudy",
            [
                ("status", "available,registered"),
                ("_sort", "_id"),
                ("_count", str(size)),
                ("_offset", str(offset)),
            ],
        )
    rows = []
    for stored in found.matches:
        doc = json_loads(stored.content)
        uid = study_uid_of(doc)
        if uid:
            rows.append((uid, doc, stored.version_id))
    return rows, found.has_more


def _withdraw(store: Store, rows: list[tuple[str, Json, int]]) -> list[str]:
    done = []
    with store.unit_of_work(write=True) as uow:
        for uid, doc, version in rows:
            try:
                uow.resources.update("ImagingStudy", doc["id"], withdrawn_study(doc), if_match=version)
            except VersionConflict:  # changed meanwhile (re-indexed): the next sweep looks again
                continue
            done.append(uid)
        uow.commit()
    return done


async def reconcile(store: Store, client: OrthancClient, *, page_size: int = 200) -> ReconcileReport:
    """Withdraw the ImagingStudies whose study Orthanc no longer holds (module docstring).

    Raises: Unavailable (Orthanc unreachable: nothing is changed for the current page)."""
    report = ReconcileReport()
    offset = 0
    while True:
        rows, more = await asyncio.to_thread(_page, store, offset, page_size)
        if not rows:
            break
        present = await client.existing_studies([uid for uid, _, _ in rows])
        gone = [row for row in rows if row[0] not in present]
        report.checked += len(rows)
        if len(rows) >= SUSPICIOUS_PAGE and len(gone) == len(rows):
            report.stopped = f"Orthanc holds none of {len(rows)} indexed studies: wrong or empty Orthanc?"
            log.warning("imaging reconcile stopped: %s", report.stopped)
            break
        withdrawn = await asyncio.to_thread(_withdraw, store, gone) if gone else []
        report.withdrawn += withdrawn
        if not more:
            break
        offset += len(rows) - len(withdrawn)  # withdrawn ones left the status=available set
    if report.withdrawn:
        log.info("imaging reconcile: %d studies deleted in Orthanc withdrawn", len(report.withdrawn))
    return report


def cancel_review(repo: ResourceRepository, task_id: str) -> bool:
    """Cancel a requested review Task whose study was deleted in Orthanc. True if changed."""
    found = repo.read_many([("Task", task_id)]).get(("Task", task_id))
    if found is None or found.deleted:
        return False
    doc = json_loads(found.content)
    if doc.get("status") != "requested":
        return False
    doc.update(status="cancelled", businessStatus={"text": "study deleted in Orthanc"})
    repo.update("Task", task_id, doc, if_match=found.version_id)
    return True
