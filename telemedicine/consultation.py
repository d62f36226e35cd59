"""Remote consultation (远程会诊) and two-way referral (双向转诊, WS/T 790.16) workflow.

1. `request_consultation`: a village/township doctor asks a hospital: ServiceRequest
   (category Consultation, SNOMED 11429006) with reason, question, urgency (`priority`), the
   shared records (`supportingInfo`: DiagnosticReport, ImagingStudy, DocumentReference, …) and
   the resident's Consent (required, active, `permit`), plus a Task (`requested`, owner = the
   invited hospital).
2. `respond`: the hospital accepts (Task `accepted`) or declines (Task `rejected`, reason;
   ServiceRequest `revoked`).
3. `schedule`: an Appointment based on the ServiceRequest with the inviting (邀请方) and invited
   (受邀方) institutions, the participants and the video link (R5 `virtualService` extension);
   Task `in-progress`.
4. `record_opinion`: the specialist's consult note (Composition, LOINC 11488-4, `event.detail`
   → the ServiceRequest); Task `completed` with the note as output, ServiceRequest `completed`,
   the consultation Appointment `fulfilled`.
5. `refer`: refer the resident up or back down (ServiceRequest, SNOMED 3457005 Patient
   referral, `basedOn` the consultation) with a Task for the receiving institution.
Each step writes a Communication for the people concerned.

May import: the standard library, `ehr_store`, `telemedicine.*`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ehr_store import Forbidden, ResourceRepository, StoredResource, Unprocessable
from telemedicine.booking import Actor, Result, golden_patient
from telemedicine.errors import WorkflowError
from telemedicine.fhir import (
    CONSULT_NOTE,
    CONSULTATION,
    EXT_CONSENT,
    EXT_VIRTUAL_SERVICE,
    PARTICIPANT_ROLE,
    REFERRAL,
    Json,
    instant,
    load,
    narrative,
    strip_meta,
)
from telemedicine.notify import communication

URGENCY = ("routine", "urgent", "asap", "stat")
SHAREABLE = (
    "DiagnosticReport",
    "ImagingStudy",
    "DocumentReference",
    "Observation",
    "Condition",
    "MedicationStatement",
    "Procedure",
    "Composition",
    "Encounter",
)
TASK_CODE = {"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}


@dataclass(frozen=True)
class ConsultationRequest:
    """Input of `ServiceRequest/$request-consultation`. `performer`: the invited hospital's
    Organization id (`org-QYRMYY`); `specialist`: optional PractitionerRole id; `shared`:
    references (`DiagnosticReport/…`); `consent`: the resident's Consent id; `requester`: used
    only when the caller has no facility of their own (hie-admin, a local run without sign-in)."""

    patient: str
    performer: str
    reason: str
    question: str
    consent: str
    urgency: str = "routine"
    shared: tuple[str, ...] = ()
    specialist: str | None = None
    requester: str | None = None


def _resident_ids(repo: ResourceRepository, golden: str, given: str) -> set[str]:
    ids = {golden, given}
    for link in load(repo.read("Patient", golden)).get("link", []):
        ref = str((link.get("other") or {}).get("reference", ""))
        if ref.startswith("Patient/"):
            ids.add(ref.split("/", 1)[1])
    return ids


def _check_consent(repo: ResourceRepository, consent_id: str, ids: set[str]) -> None:
    consent = load(repo.read("Consent", consent_id))
    patient = str((consent.get("patient") or {}).get("reference", "")).split("/")[-1]
    kind = (consent.get("provision") or {}).get("type", "permit")
    for bad, why in (
        (consent.get("status") != "active", "is not active"),
        (patient not in ids, "is another resident's"),
        (kind != "permit", "does not permit sharing"),
    ):
        if bad:
            raise Unprocessable(
                f"Consent/{consent_id} {why}: the resident's consent is required before a "
                "specialist sees the shared record",
                expression=("Parameters.parameter.where(name='consent')",),
            )


def _check_shared(repo: ResourceRepository, shared: tuple[str, ...], ids: set[str]) -> None:
    keys = []
    for ref in shared:
        rtype, _, rid = ref.partition("/")
        if rtype not in SHAREABLE or not rid:
            raise Unprocessable(
                f"{ref!r} cannot be shared (types: {', '.join(SHAREABLE)})",
                expression=("Parameters.parameter.where(name='shared')",),
            )
        keys.append((rtype, rid))
    found = repo.read_many(keys)
    for rtype, rid in keys:
        stored = found.get((rtype, rid))
        if stored is None or stored.deleted:
            raise Unprocessable(
                f"shared record {rtype}/{rid} is not known",
                expression=("Parameters.parameter.where(name='shared')",),
            )
        doc = load(stored)
        owner = str((doc.get("subject") or doc.get("patient") or {}).get("reference", "")).split("/")[-1]
        if owner and owner not in ids:
            raise Unprocessable(
                f"shared record {rtype}/{rid} belongs to another resident",
                expression=("Parameters.parameter.where(name='shared')",),
            )


def request_consultation(
    repo: ResourceRepository, req: ConsultationRequest, actor: Actor, *, now: datetime
) -> Result:
    """Step 1 (module docstring). Raises: Unprocessable (consent, shared records), InvalidInput."""
    if req.urgency not in URGENCY:
        raise Unprocessable(
            f"urgency must be one of {', '.join(URGENCY)}",
            expression=("Parameters.parameter.where(name='urgency')",),
        )
    golden = golden_patient(repo, req.patient)
    ids = _resident_ids(repo, golden, req.patient)
    _check_consent(repo, req.consent, ids)
    _check_shared(repo, req.shared, ids)
    requester = actor.reference or actor.organization or req.requester
    performers = [{"reference": f"Organization/{req.performer}"}]
    if req.specialist:
        performers.append({"reference": f"PractitionerRole/{req.specialist}"})
    sr: Json = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "category": [{"coding": [CONSULTATION]}],
        "code": {"coding": [CONSULTATION], "text": "远程会诊"},
        "priority": req.urgency,
        "subject": {"reference": f"Patient/{golden}"},
        "authoredOn": instant(now),
        "performer": performers,
        "reasonCode": [{"text": req.reason}],
        "note": [{"text": req.question, "time": instant(now)}],
        "supportingInfo": [{"reference": r} for r in (*req.shared, f"Consent/{req.consent}")],
        "extension": [{"url": EXT_CONSENT, "valueReference": {"reference": f"Consent/{req.consent}"}}],
    }
    if requester:
        sr["requester"] = {"reference": requester}
    if actor.facility:
        sr["meta"] = {"source": f"urn:qyhie:facility:{actor.facility}"}
    stored_sr = repo.create(sr)
    task = repo.create(
        _task(stored_sr.reference, golden, requester, f"Organization/{req.performer}", req.urgency, now)
    )
    note = communication(
        "consultation-requested",
        f"会诊申请: {req.reason}",
        subject=f"Patient/{golden}",
        about=[stored_sr.reference, task.reference],
        recipients=[f"Organization/{req.performer}"],
        sender=requester,
    )
    sent = repo.create(note)
    return Result(stored_sr, [stored_sr, task, sent], [load(sent)])


def _task(focus: str, patient: str, requester: str | None, owner: str, priority: str, now: datetime) -> Json:
    task: Json = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "priority": priority,
        "code": {"coding": [TASK_CODE]},
        "focus": {"reference": focus},
        "basedOn": [{"reference": focus}],
        "for": {"reference": f"Patient/{patient}"},
        "authoredOn": instant(now),
        "lastModified": instant(now),
        "owner": {"reference": owner},
    }
    if requester:
        task["requester"] = {"reference": requester}
    return task


def task_of(repo: ResourceRepository, sr_id: str) -> StoredResource:
    """The Task that tracks the consultation ServiceRequest. Raises: WorkflowError (none)."""
    found = repo.search(
        "Task", [("focus", f"ServiceRequest/{sr_id}"), ("_sort", "-_lastUpdated"), ("_count", "1")]
    )
    if not found.matches:
        raise WorkflowError(f"ServiceRequest/{sr_id} has no consultation Task")
    return found.matches[0]


def require_invited(actor: Actor, owner: str) -> None:
    """Only the invited institution (or hie-admin) acts on a consultation addressed to it.
    Raises: Forbidden."""
    if actor.admin or (actor.organization and actor.organization == owner):
        return
    raise Forbidden(
        f"access refused by rule 'consultation-invited': the consultation is addressed to {owner}"
    )


def _advance(
    repo: ResourceRepository, stored: StoredResource, status: str, now: datetime, **extra: object
) -> StoredResource:
    doc = strip_meta(load(stored))
    doc["status"] = status
    if doc.get("resourceType") == "Task":
        doc["lastModified"] = instant(now)
    doc.update(extra)
    new, _ = repo.update(stored.resource_type, stored.id, doc, if_match=stored.version_id)
    return new


def respond(
    repo: ResourceRepository, sr_id: str, actor: Actor, *, accept: bool, reason: str | None, now: datetime
) -> Result:
    """Step 2: Task accepted, or rejected with `reason` (ServiceRequest revoked). Raises:
    Forbidden (not the invited institution), WorkflowError (already answered)."""
    task_stored = task_of(repo, sr_id)
    task = load(task_stored)
    owner = str((task.get("owner") or {}).get("reference", ""))
    require_invited(actor, owner)
    if task.get("status") != "requested":
        raise WorkflowError(f"the consultation was already answered (Task is {task.get('status')})")
    written: list[StoredResource] = []
    if accept:
        written.append(_advance(repo, task_stored, "accepted", now))
    else:
        if not reason:
            raise WorkflowError(
                "declining needs a reason", expression=("Parameters.parameter.where(name='reason')",)
            )
        written.append(_advance(repo, task_stored, "rejected", now, statusReason={"text": reason}))
        written.append(_advance(repo, repo.read("ServiceRequest", sr_id), "revoked", now))
    event = "consultation-accepted" if accept else "consultation-declined"
    note = communication(
        event,
        "会诊已接受" if accept else f"会诊被拒绝: {reason}",
        subject=str((task.get("for") or {}).get("reference", "")) or None,
        about=[f"ServiceRequest/{sr_id}", task_stored.reference],
        recipients=[str((task.get("requester") or {}).get("reference", ""))],
        sender=owner,
    )
    sent = repo.create(note)
    return Result(written[0], [*written, sent], [load(sent)])


def schedule(
    repo: ResourceRepository,
    sr_id: str,
    actor: Actor,
    *,
    start: datetime,
    end: datetime,
    meeting_url: str,
    participants: tuple[str, ...],
    now: datetime,
) -> Result:
    """Step 3: the consultation Appointment (inviting/invited institutions, participants, video
    link). Raises: Forbidden, WorkflowError (Task not accepted), Unprocessable (end ≤ start)."""
    if end <= start:
        raise Unprocessable(
            "the consultation must end after it starts",
            expression=("Parameters.parameter.where(name='end')",),
        )
    sr = load(repo.read("ServiceRequest", sr_id))
    task_stored = task_of(repo, sr_id)
    task = load(task_stored)
    owner = str((task.get("owner") or {}).get("reference", ""))
    require_invited(actor, owner)
    if task.get("status") not in ("accepted", "in-progress"):
        raise WorkflowError(f"accept the consultation before scheduling it (Task is {task.get('status')})")
    inviting = str((sr.get("requester") or {}).get("reference", ""))
    people = [{"actor": sr["subject"], "required": "required", "status": "accepted"}]
    for role, ref in (("inviting", inviting), ("invited", owner)):
        if ref:
            people.append(
                {
                    "type": [{"coding": [{"system": PARTICIPANT_ROLE, "code": role}]}],
                    "actor": {"reference": ref},
                    "required": "required",
                    "status": "accepted",
                }
            )
    people += [
        {"actor": {"reference": r}, "required": "required", "status": "needs-action"} for r in participants
    ]
    appointment: Json = {
        "resourceType": "Appointment",
        "status": "booked",
        "serviceCategory": [{"coding": [CONSULTATION]}],
        "start": start.isoformat(timespec="seconds"),
        "end": end.isoformat(timespec="seconds"),
        "created": instant(now),
        "basedOn": [{"reference": f"ServiceRequest/{sr_id}"}],
        "participant": people,
        "extension": [
            {
                "url": EXT_VIRTUAL_SERVICE,
                "extension": [
                    {
                        "url": "channelType",
                        "valueCoding": {
                            "system": "http://hl7.org/fhir/virtual-service-type",
                            "code": "video",
                            "display": "视频会诊",
                        },
                    },
                    {"url": "addressUrl", "valueUrl": meeting_url},
                ],
            }
        ],
    }
    appt = repo.create(appointment)
    moved = (
        _advance(repo, task_stored, "in-progress", now)
        if task.get("status") != "in-progress"
        else task_stored
    )
    note = communication(
        "consultation-scheduled",
        f"会诊时间: {appointment['start']} 视频链接: {meeting_url}",
        subject=sr["subject"]["reference"],
        about=[f"ServiceRequest/{sr_id}", appt.reference],
        recipients=[inviting, owner, *participants],
        sender=owner,
    )
    sent = repo.create(note)
    return Result(appt, [appt, moved, sent], [load(sent)])


def record_opinion(
    repo: ResourceRepository, sr_id: str, actor: Actor, *, opinion: str, diagnosis: str | None, now: datetime
) -> Result:
    """Step 4: the consult note and the closing state changes. Raises: Forbidden, WorkflowError."""
    sr_stored = repo.read("ServiceRequest", sr_id)
    sr = load(sr_stored)
    task_stored = task_of(repo, sr_id)
    task = load(task_stored)
    owner = str((task.get("owner") or {}).get("reference", ""))
    require_invited(actor, owner)
    if task.get("status") not in ("accepted", "in-progress"):
        raise WorkflowError(
            f"the consultation is {task.get('status')}; an opinion needs an accepted consultation"
        )
    sections = [{"title": "会诊意见", "text": narrative(opinion)}]
    if diagnosis:
        sections.append({"title": "诊断", "text": narrative(diagnosis)})
    composition: Json = {
        "resourceType": "Composition",
        "status": "final",
        "type": {"coding": [CONSULT_NOTE], "text": "会诊记录"},
        "subject": sr["subject"],
        "date": instant(now),
        "author": [{"reference": actor.reference or owner}],
        "title": "会诊意见",
        "custodian": {"reference": owner},
        "event": [{"detail": [{"reference": f"ServiceRequest/{sr_id}"}]}],
        "section": sections,
    }
    note_stored = repo.create(composition)
    written = [
        note_stored,
        _advance(
            repo,
            task_stored,
            "completed",
            now,
            output=[{"type": {"text": "opinion"}, "valueReference": {"reference": note_stored.reference}}],
        ),
        _advance(repo, sr_stored, "completed", now),
    ]
    held = repo.search("Appointment", [("based-on", f"ServiceRequest/{sr_id}"), ("status", "booked,arrived")])
    written += [_advance(repo, a, "fulfilled", now) for a in held.matches]
    inviting = str((sr.get("requester") or {}).get("reference", ""))
    sent = repo.create(
        communication(
            "consultation-opinion",
            "会诊意见已出具",
            subject=sr["subject"]["reference"],
            about=[f"ServiceRequest/{sr_id}", note_stored.reference],
            recipients=[inviting],
            sender=actor.reference or owner,
        )
    )
    return Result(note_stored, [*written, sent], [load(sent)])


def refer(
    repo: ResourceRepository,
    sr_id: str,
    actor: Actor,
    *,
    direction: str,
    target: str,
    reason: str,
    now: datetime,
) -> Result:
    """Step 5: refer up (`up`, to a higher-level hospital) or back down (`down`, to the village/
    township facility): a referral ServiceRequest with a Task for `target` (Organization id).
    Raises: Unprocessable (direction), Forbidden (not a party to the consultation)."""
    if direction not in ("up", "down"):
        raise Unprocessable(
            "direction must be up or down", expression=("Parameters.parameter.where(name='direction')",)
        )
    sr = load(repo.read("ServiceRequest", sr_id))
    parties = {str((sr.get("requester") or {}).get("reference", ""))} | {
        str(p.get("reference", "")) for p in sr.get("performer", [])
    }
    if not actor.admin and not ({actor.organization, actor.reference} & parties):
        raise Forbidden(
            "access refused by rule 'consultation-party': only the inviting or invited institution refers"
        )
    requester = actor.reference or actor.organization
    referral: Json = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "category": [{"coding": [REFERRAL]}],
        "code": {"coding": [REFERRAL], "text": "上转" if direction == "up" else "下转"},
        "subject": sr["subject"],
        "basedOn": [{"reference": f"ServiceRequest/{sr_id}"}],
        "authoredOn": instant(now),
        "performer": [{"reference": f"Organization/{target}"}],
        "reasonCode": [{"text": reason}],
        "supportingInfo": sr.get("supportingInfo", []),
        "extension": [{"url": f"{EXT_CONSENT.rsplit('/', 1)[0]}/referral-direction", "valueCode": direction}],
    }
    if requester:
        referral["requester"] = {"reference": requester}
    stored = repo.create(referral)
    task = repo.create(
        _task(
            stored.reference,
            sr["subject"]["reference"].split("/")[-1],
            requester,
            f"Organization/{target}",
            str(sr.get("priority", "routine")),
            now,
        )
    )
    sent = repo.create(
        communication(
            f"referral-{direction}",
            f"转诊 ({'上转' if direction == 'up' else '下转'}): {reason}",
            subject=sr["subject"]["reference"],
            about=[stored.reference, task.reference],
            recipients=[f"Organization/{target}"],
            sender=requester,
        )
    )
    return Result(stored, [stored, task, sent], [load(sent)])
