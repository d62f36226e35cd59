"""Appointment life cycle after booking: cancel, reschedule, arrived/fulfilled/noshow, 停诊, reminders.

Runs inside the caller's unit of work (see `telemedicine.booking` for the concurrency and
retry rules); each step records a Communication (dispatched after commit).

May import: the standard library, `ehr_store`, `telemedicine.*`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from ehr_store import Conflict, ResourceRepository, StoredResource
from telemedicine.booking import (
    TRANSITIONS,
    Actor,
    BookRequest,
    Result,
    book,
    cancel_reason,
    charge_item_id,
    release_place,
)
from telemedicine.errors import WorkflowError
from telemedicine.fhir import (
    EXT_BOOKED,
    EXT_BOOKED_BY,
    EXT_ORGANIZATION,
    EXT_RESCHEDULED_FROM,
    EXT_RESCHEDULED_TO,
    EXT_SESSION,
    Json,
    ext_value,
    load,
    set_ext,
    stable_id,
    strip_meta,
)
from telemedicine.notify import communication
from telemedicine.publish import search_all


def _patient(appt: Json) -> str | None:
    for p in appt.get("participant", []):
        ref = str((p.get("actor") or {}).get("reference", ""))
        if ref.startswith("Patient/"):
            return ref
    return None


def _hospital(appt: Json) -> str:
    return str((ext_value(appt, EXT_ORGANIZATION, "Reference") or {}).get("reference", ""))


def _booked_by(appt: Json) -> str:
    return str((ext_value(appt, EXT_BOOKED_BY, "Reference") or {}).get("reference", ""))


def _charge_status(repo: ResourceRepository, appt_id: str, status: str) -> StoredResource | None:
    fee_id = charge_item_id(appt_id)
    found = repo.read_many([("ChargeItem", fee_id)]).get(("ChargeItem", fee_id))
    if found is None or found.deleted:
        return None
    doc = strip_meta(load(found))
    doc["status"] = status
    new, _ = repo.update("ChargeItem", fee_id, doc, if_match=found.version_id)
    return new


def cancel(
    repo: ResourceRepository,
    appt_id: str,
    actor: Actor,
    *,
    now: datetime,
    reason_code: str | None,
    reason_text: str | None,
    extra: Json | None = None,
) -> Result:
    """`Appointment/{id}/$cancel`: status → cancelled with `cancelationReason`, the slot place
    freed, the fee ChargeItem `aborted`. Cancelling a cancelled appointment changes nothing.

    Raises: NotFound, WorkflowError (fulfilled/noshow), VersionConflict (run again)."""
    stored = repo.read("Appointment", appt_id)
    appt = load(stored)
    if appt.get("status") == "cancelled":
        return Result(stored, created=False)
    if appt.get("status") not in ("booked", "arrived", "pending", "proposed"):
        raise WorkflowError(f"Appointment/{appt_id} is {appt.get('status')} and cannot be cancelled")
    updated = strip_meta(appt)
    updated["status"] = "cancelled"
    updated["cancelationReason"] = cancel_reason(reason_code, reason_text)
    for key, value in (extra or {}).items():
        set_ext(updated, key, "Reference", value)
    new, _ = repo.update("Appointment", appt_id, updated, if_match=stored.version_id)
    written = [new]
    for slot_ref in appt.get("slot", []):
        freed = release_place(repo, str(slot_ref.get("reference", "")).split("/")[-1], now)
        written += [freed] if freed else []
    charge = _charge_status(repo, appt_id, "aborted")
    written += [charge] if charge else []
    note = communication(
        "appointment-cancelled",
        f"预约已取消: {appt.get('start')} ({reason_text or reason_code})",
        subject=_patient(appt),
        about=[new.reference],
        recipients=[_booked_by(appt), _hospital(appt), actor.reference or ""],
        sender=actor.reference or actor.organization,
    )
    sent = repo.create(note)
    return Result(new, [*written, sent], [load(sent)])


def set_status(repo: ResourceRepository, appt_id: str, status: str, actor: Actor) -> Result:
    """booked → arrived → fulfilled, booked → noshow (FHIR R4B Appointment.status).

    Raises: WorkflowError (a transition the life cycle does not allow), NotFound."""
    stored = repo.read("Appointment", appt_id)
    appt = load(stored)
    current = str(appt.get("status"))
    if status == current:
        return Result(stored, created=False)
    if status not in TRANSITIONS.get(current, set()):
        allowed = ", ".join(sorted(TRANSITIONS.get(current, set()))) or "none"
        raise WorkflowError(
            f"Appointment/{appt_id} is {current}; it can go to: {allowed} (not {status})",
            expression=("Parameters.parameter.where(name='status')",),
        )
    updated = strip_meta(appt)
    updated["status"] = status
    new, _ = repo.update("Appointment", appt_id, updated, if_match=stored.version_id)
    note = communication(
        f"appointment-{status}",
        f"就诊状态: {status}",
        subject=_patient(appt),
        about=[new.reference],
        recipients=[_booked_by(appt), _hospital(appt)],
        sender=actor.reference or actor.organization,
    )
    sent = repo.create(note)
    return Result(new, [new, sent], [load(sent)])


def reschedule(
    repo: ResourceRepository,
    appt_id: str,
    new_slot: str,
    actor: Actor,
    *,
    now: datetime,
    reason_code: str | None,
    reason_text: str | None,
    identifier: tuple[str, str] | None,
    default_fee: Decimal,
) -> Result:
    """`Appointment/{id}/$reschedule`: book `new_slot` for the same resident (same referral),
    then cancel the old appointment with the reason; the two point at each other
    (`appointment-rescheduled-from`/`-to` extensions). Raises: as `book` and `cancel`."""
    old = load(repo.read("Appointment", appt_id))
    if old.get("status") != "booked":
        raise WorkflowError(f"Appointment/{appt_id} is {old.get('status')}; only booked ones are rescheduled")
    patient = (_patient(old) or "").split("/")[-1]
    referral = next((str(b.get("reference", "")).split("/")[-1] for b in old.get("basedOn", [])), None)
    request = BookRequest(
        new_slot,
        patient,
        identifier or ("urn:qyhie:reschedule", f"{appt_id}>{new_slot}"),
        referral,
        reason_text,
        old.get("comment"),
    )
    booked = book(repo, request, actor, now=now, default_fee=default_fee)
    if not booked.created:
        return booked
    doc = strip_meta(load(booked.main))
    set_ext(doc, EXT_RESCHEDULED_FROM, "Reference", {"reference": f"Appointment/{appt_id}"})
    new_appt, _ = repo.update("Appointment", booked.main.id, doc, if_match=booked.main.version_id)
    cancelled = cancel(
        repo,
        appt_id,
        actor,
        now=now,
        reason_code=reason_code,
        reason_text=reason_text,
        extra={EXT_RESCHEDULED_TO: {"reference": new_appt.reference}},
    )
    return Result(
        new_appt,
        [new_appt, *booked.written[1:], *cancelled.written],
        [*booked.communications, *cancelled.communications],
    )


def stop_clinic(
    repo: ResourceRepository,
    schedule_id: str,
    day: date,
    session: str | None,
    reason: str,
    actor: Actor,
    *,
    now: datetime,
    tz: str,
) -> list[Result]:
    """停诊 on `day` (one `session` or all): booked appointments are cancelled (reason `prov`,
    the text shown to residents), then the day's slots become `busy-unavailable`."""
    zone = ZoneInfo(tz)
    begin = datetime.combine(day, datetime.min.time(), zone)
    window = [
        ("schedule", f"Schedule/{schedule_id}"),
        ("start", f"ge{begin.isoformat()}"),
        ("start", f"lt{(begin + timedelta(days=1)).isoformat()}"),
    ]
    results: list[Result] = []
    for stored in search_all(repo, "Slot", window):
        slot = load(stored)
        if session and _session(slot) != session:
            continue
        held = search_all(repo, "Appointment", [("slot", stored.reference), ("status", "booked,arrived")])
        for appt in held:
            results.append(
                cancel(repo, appt.id, actor, now=now, reason_code="prov", reason_text=f"停诊: {reason}")
            )
        current = load(repo.read("Slot", stored.id))
        closed = strip_meta(current)
        closed["status"] = "busy-unavailable"
        closed["comment"] = f"停诊: {reason}"
        set_ext(closed, EXT_BOOKED, "UnsignedInt", 0)
        new, _ = repo.update("Slot", stored.id, closed)
        results.append(Result(new, [new]))
    return results


def _session(slot: Json) -> str | None:
    value = ext_value(slot, EXT_SESSION, "Code")
    return str(value) if value else None


def remind(repo: ResourceRepository, day: date, tz: str) -> list[Result]:
    """Reminders (Communication `appointment-reminder`) for booked appointments on `day`
    (local date). Idempotent: one reminder per appointment (deterministic Communication id)."""
    zone = ZoneInfo(tz)
    begin = datetime.combine(day, datetime.min.time(), zone)
    params = [
        ("date", f"ge{begin.isoformat()}"),
        ("date", f"lt{(begin + timedelta(days=1)).isoformat()}"),
        ("status", "booked"),
    ]
    out: list[Result] = []
    for stored in search_all(repo, "Appointment", params):
        appt = load(stored)
        note = communication(
            "appointment-reminder",
            f"就诊提醒: 明天 {appt.get('start')} 请按时就诊",
            subject=_patient(appt),
            about=[stored.reference],
            recipients=[_booked_by(appt), _patient(appt) or ""],
            sender=_hospital(appt) or None,
        )
        rid = stable_id("remind", stored.id)
        try:
            sent = repo.create({**note, "id": rid}, id=rid)
        except Conflict:
            continue
        out.append(Result(sent, [sent], [load(sent)]))
    return out
