"""Remote registration (远程挂号, WS/T 790.15): book, cancel, reschedule, status changes.

Every function runs inside the caller's unit of work and returns what it wrote; the caller
commits once. Concurrency: a booking bumps the Slot's `slot-booked` count with `If-Match` on
the version it read, so of two units of work that read the same version only one can commit
(the store raises `VersionConflict`; SQLite writers are serialised, PostgreSQL locks the row).
The caller runs the unit again after `VersionConflict`/`RetryBooking`; a full slot then
answers `SlotUnavailable` (409). Idempotency: with a client identifier the Appointment id is
derived from it, so a retry finds the first booking (and a racing duplicate collides on the
primary key) — the same booking is returned, never a second one.

Appointment status (FHIR R4B Appointment): booked → arrived → fulfilled; booked → noshow;
booked/arrived → cancelled (the slot place is freed when the slot is still ahead). The
registration fee (挂号费) is a ChargeItem: `billable` when booked, `aborted` when cancelled.

May import: the standard library, `ehr_store`, `telemedicine.*`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from ehr_store import (
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    ResourceRepository,
    StoredResource,
    Unprocessable,
)
from telemedicine.errors import RetryBooking, SlotUnavailable, WorkflowError
from telemedicine.fhir import (
    CANCEL_REASON,
    CNY,
    EXT_BOOKED,
    EXT_BOOKED_BY,
    EXT_CAPACITY,
    EXT_ORGANIZATION,
    EXT_PROVIDER,
    FEE_SYSTEM,
    POOL_SYSTEM,
    Json,
    ext_value,
    instant,
    load,
    parse_instant,
    set_ext,
    stable_id,
    strip_meta,
)
from telemedicine.notify import communication

TRANSITIONS = {"booked": {"arrived", "noshow"}, "arrived": {"fulfilled"}}
EXT_FEE = "registration-fee"
GOLDEN_TAG = "golden"


@dataclass(frozen=True)
class Actor:
    """Who acts: a FHIR reference (`Practitioner/…`, `PractitionerRole/…`, `Organization/…`)
    and their facility code (`TTWSY`), as the auth layer knows them."""

    reference: str | None
    facility: str | None
    display: str = ""
    admin: bool = False

    @property
    def organization(self) -> str | None:
        """`Organization/org-<facility>` (the platform's facility Organization), or None."""
        return f"Organization/org-{self.facility}" if self.facility else None


@dataclass(frozen=True)
class BookRequest:
    """`Appointment/$book` input: slot id, the resident's Patient id (golden or source), an
    optional client identifier (system, value), referral ServiceRequest id, reason, comment."""

    slot: str
    patient: str
    identifier: tuple[str, str] | None = None
    referral: str | None = None
    reason: str | None = None
    comment: str | None = None


@dataclass
class Result:
    """What a workflow step wrote. `main`: the resource to answer with; `created`: False when
    an idempotent retry found the earlier booking; `communications`: to dispatch after commit."""

    main: StoredResource
    written: list[StoredResource] = field(default_factory=list)
    communications: list[Json] = field(default_factory=list)
    created: bool = True


def golden_patient(repo: ResourceRepository, patient_id: str) -> str:
    """The resident's golden Patient id (a source Patient follows its `refer` link).

    Raises: NotFound/Gone (unknown Patient)."""
    patient = load(repo.read("Patient", patient_id))
    tags = (patient.get("meta") or {}).get("tag", [])
    if any(t.get("code") == GOLDEN_TAG for t in tags):
        return patient_id
    for link in patient.get("link", []):
        ref = str((link.get("other") or {}).get("reference", ""))
        if link.get("type") in ("refer", "replaced-by") and ref.startswith("Patient/"):
            return ref.split("/", 1)[1]
    return patient_id


def appointment_id(identifier: tuple[str, str] | None) -> str:
    """Derived from the client identifier (idempotency), else random."""
    if identifier is None:
        return f"appt-{uuid.uuid4().hex}"
    return stable_id("appt", *identifier)


def _read_optional(repo: ResourceRepository, rtype: str, rid: str) -> StoredResource | None:
    found = repo.read_many([(rtype, rid)]).get((rtype, rid))
    return found if found is not None and not found.deleted else None


def _replay(repo: ResourceRepository, stored: StoredResource, req: BookRequest, patient: str) -> Result:
    appt = load(stored)
    same_slot = {s.get("reference") for s in appt.get("slot", [])} == {f"Slot/{req.slot}"}
    same_patient = f"Patient/{patient}" in {p.get("actor", {}).get("reference") for p in appt["participant"]}
    if not (same_slot and same_patient):
        raise Conflict(
            f"identifier {(req.identifier or ('', ''))[1]!r} was already used for another booking",
            expression=("Parameters.parameter.where(name='identifier')",),
        )
    return Result(stored, created=False)


def _check_slot(slot: Json, slot_id: str, now: datetime) -> tuple[int, int]:
    capacity = int(ext_value(slot, EXT_CAPACITY, "PositiveInt") or 1)
    booked = int(ext_value(slot, EXT_BOOKED, "UnsignedInt") or 0)
    if slot.get("status") != "free" or booked >= capacity:
        why = "fully booked" if slot.get("status") == "busy" or booked >= capacity else "not open for booking"
        raise SlotUnavailable(
            f"Slot/{slot_id} is {why} (status {slot.get('status')}, {booked} of {capacity} places taken)"
        )
    if parse_instant(slot["start"], "Slot.start") <= now:
        raise SlotUnavailable(f"Slot/{slot_id} has already started")
    return capacity, booked


def _pool(slot: Json) -> str:
    codes = [
        c.get("code")
        for cat in slot.get("serviceCategory", [])
        for c in cat.get("coding", [])
        if c.get("system") == POOL_SYSTEM
    ]
    return str(codes[0]) if codes else "general"


def _check_referral(repo: ResourceRepository, req: BookRequest, slot: Json, patient: str) -> Json | None:
    if req.referral is None:
        if _pool(slot) == "referral":
            raise Forbidden(
                f"Slot/{req.slot} is reserved for referrals from lower-level facilities (分级诊疗); "
                "book it with a referral ServiceRequest",
                expression=("Parameters.parameter.where(name='referral')",),
            )
        return None
    sr = load(repo.read("ServiceRequest", req.referral))
    hospital = str((ext_value(slot, EXT_ORGANIZATION, "Reference") or {}).get("reference", ""))
    problems = [
        (sr.get("status") != "active", "is not active"),
        (
            (sr.get("subject") or {}).get("reference")
            not in (f"Patient/{patient}", f"Patient/{req.patient}"),
            "is for another patient",
        ),
        (
            str((sr.get("requester") or {}).get("reference", "")) == hospital,
            "was raised by the hospital itself",
        ),
    ]
    for bad, why in problems:
        if bad:
            raise Unprocessable(
                f"referral ServiceRequest/{req.referral} {why}",
                expression=("Parameters.parameter.where(name='referral')",),
            )
    return sr


def _fee(repo: ResourceRepository, slot: Json, default: Decimal) -> Decimal:
    sid = str((slot.get("schedule") or {}).get("reference", "")).split("/")[-1]
    schedule = _read_optional(repo, "Schedule", sid) if sid else None
    for ext in load(schedule).get("extension", []) if schedule else []:
        if ext.get("url", "").endswith(EXT_FEE) and "valueMoney" in ext:
            return Decimal(str(ext["valueMoney"]["value"]))
    return default


def _appointment(req: BookRequest, slot: Json, patient: str, actor: Actor, now: datetime) -> Json:
    provider = ext_value(slot, EXT_PROVIDER, "Reference")
    participants: list[Json] = [
        {"actor": {"reference": f"Patient/{patient}"}, "required": "required", "status": "accepted"}
    ]
    if provider:
        participants.append({"actor": provider, "required": "required", "status": "accepted"})
    doc: Json = {
        "resourceType": "Appointment",
        "status": "booked",
        "specialty": slot.get("specialty", []),
        "start": slot["start"],
        "end": slot["end"],
        "slot": [{"reference": f"Slot/{req.slot}"}],
        "created": instant(now),
        "participant": participants,
        "extension": [e for e in slot.get("extension", []) if e.get("url") == EXT_ORGANIZATION],
    }
    if req.identifier:
        doc["identifier"] = [{"system": req.identifier[0], "value": req.identifier[1]}]
    if req.referral:
        doc["basedOn"] = [{"reference": f"ServiceRequest/{req.referral}"}]
    if req.reason:
        doc["reasonCode"] = [{"text": req.reason}]
    if req.comment:
        doc["comment"] = req.comment
    if actor.reference or actor.organization:
        set_ext(doc, EXT_BOOKED_BY, "Reference", {"reference": actor.reference or actor.organization})
    return doc


def charge_item_id(appt_id: str) -> str:
    """The registration fee ChargeItem id of an Appointment."""
    return stable_id("fee", appt_id)


def _charge(appt_id: str, slot: Json, patient: str, actor: Actor, fee: Decimal, now: datetime) -> Json:
    doc: Json = {
        "resourceType": "ChargeItem",
        "status": "billable",
        "code": {"coding": [{"system": FEE_SYSTEM, "code": "registration", "display": "挂号费"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "occurrenceDateTime": slot["start"],
        "enteredDate": instant(now),
        "quantity": {"value": 1},
        "priceOverride": {"value": fee, "currency": CNY},
        "supportingInformation": [{"reference": f"Appointment/{appt_id}"}],
    }
    hospital = ext_value(slot, EXT_ORGANIZATION, "Reference")
    if hospital:
        doc["performingOrganization"] = hospital
    if actor.organization:
        doc["requestingOrganization"] = {"reference": actor.organization}
    return doc


def book(
    repo: ResourceRepository, req: BookRequest, actor: Actor, *, now: datetime, default_fee: Decimal
) -> Result:
    """Book one place of `req.slot` for the resident (`Appointment/$book`, FHIR scheduling:
    Slot → Appointment `booked`), with its ChargeItem and a Communication.

    Raises: SlotUnavailable (409: full, closed, past), Forbidden (reserved pool without a
    referral), Unprocessable (bad referral), NotFound (slot/patient), Conflict (identifier
    reused for another booking; the same patient already holds this slot), VersionConflict /
    RetryBooking (run the unit of work again).
    """
    appt_id = appointment_id(req.identifier)
    patient = golden_patient(repo, req.patient)
    if req.identifier:
        earlier = _read_optional(repo, "Appointment", appt_id)
        if earlier is not None:
            return _replay(repo, earlier, req, patient)
    try:
        slot_stored = repo.read("Slot", req.slot)
    except (NotFound, Gone):
        raise NotFound(f"Slot/{req.slot} is not known", expression=("Parameters.parameter",)) from None
    slot = load(slot_stored)
    capacity, booked = _check_slot(slot, req.slot, now)
    _check_referral(repo, req, slot, patient)
    holding = repo.search(
        "Appointment",
        [
            ("slot", f"Slot/{req.slot}"),
            ("patient", f"Patient/{patient}"),
            ("status", "booked,arrived"),
            ("_count", "1"),
        ],
    )
    if holding.matches:
        raise Conflict(
            f"the resident already holds a place in Slot/{req.slot} ({holding.matches[0].reference})"
        )
    updated = strip_meta(slot)
    set_ext(updated, EXT_BOOKED, "UnsignedInt", booked + 1)
    if booked + 1 >= capacity:
        updated["status"] = "busy"
    new_slot, _ = repo.update("Slot", req.slot, updated, if_match=slot_stored.version_id)
    try:
        appointment = repo.create({**_appointment(req, slot, patient, actor, now), "id": appt_id}, id=appt_id)
    except Conflict:
        raise RetryBooking("a booking with this identifier is being made concurrently") from None
    fee = _fee(repo, slot, default_fee)
    fee_id = charge_item_id(appt_id)
    charge = repo.create({**_charge(appt_id, slot, patient, actor, fee, now), "id": fee_id}, id=fee_id)
    note = communication(
        "appointment-booked",
        f"预约挂号成功: {slot['start']} ({fee} 元)",
        subject=f"Patient/{patient}",
        about=[appointment.reference],
        recipients=[
            actor.reference or "",
            actor.organization or "",
            str((ext_value(slot, EXT_ORGANIZATION, "Reference") or {}).get("reference", "")),
        ],
        sender=str((ext_value(slot, EXT_ORGANIZATION, "Reference") or {}).get("reference", "")) or None,
    )
    sent = repo.create(note)
    return Result(appointment, [appointment, new_slot, charge, sent], [load(sent)])


def release_place(repo: ResourceRepository, slot_id: str, now: datetime) -> StoredResource | None:
    """Give one place of a slot back (after a cancellation); a slot still ahead opens again.
    Returns the new Slot version (None when the slot is gone). Raises: VersionConflict."""
    stored = _read_optional(repo, "Slot", slot_id)
    if stored is None:
        return None
    slot = load(stored)
    booked = max(0, int(ext_value(slot, EXT_BOOKED, "UnsignedInt") or 0) - 1)
    updated = strip_meta(slot)
    set_ext(updated, EXT_BOOKED, "UnsignedInt", booked)
    if slot.get("status") == "busy" and parse_instant(slot["start"], "Slot.start") > now:
        updated["status"] = "free"
    new, _ = repo.update("Slot", slot_id, updated, if_match=stored.version_id)
    return new


def cancel_reason(code: str | None, text: str | None) -> Json:
    """Appointment.cancelationReason from a code of the FHIR appointment-cancellation-reason
    code system (`pat`, `prov`, `oth-…`) and/or a text."""
    reason: Json = {}
    if code:
        reason["coding"] = [{"system": CANCEL_REASON, "code": code}]
    if text:
        reason["text"] = text
    if not reason:
        raise WorkflowError(
            "a cancellation needs a reason (code and/or text)",
            expression=("Parameters.parameter.where(name='reason')",),
        )
    return reason
