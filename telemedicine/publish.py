"""Publishing schedules (FHIR Schedule) and their slots (FHIR Slot, 号源) into the store.

`publish(repo, template, first, last, calendar, tz)` is idempotent: the Schedule and every
Slot get deterministic ids (`Schedule/sch-<PractitionerRole id>`, `Slot/slot-<hash of schedule
and start>`), slots already published are left as they are (their bookings stand; only
search keys from an older template are rewritten), new ones are created `free`, and free
slots no longer planned (a new holiday or 停诊 day in the template) become
`busy-unavailable`. Booked slots that are no longer planned are reported in
`PublishReport.orphaned` (cancel them with `booking.stop_clinic`).

Slot shape (FHIR R4B Slot): `status`, `start`/`end` with the local offset, `specialty`,
`serviceCategory` = pool (`general` | `referral`, code system `POOL_SYSTEM`), extensions
`slot-capacity` (positiveInt), `slot-booked` (unsignedInt), `slot-provider` (PractitionerRole),
`slot-organization` (the hospital), `slot-session` (morning | afternoon), `schedule-area`
(county/township), and the `$find` search keys in `meta.tag` (`telemedicine.slotkeys`), so
`$find` reads Slots only, a few days at a time.

May import: the standard library, `ehr_store`, `telemedicine.*`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from ehr_store import ResourceRepository, StoredResource
from telemedicine.calendar import HolidayCalendar
from telemedicine.fhir import (
    EXT_AREA,
    EXT_BOOKED,
    EXT_CAPACITY,
    EXT_ORGANIZATION,
    EXT_PROVIDER,
    EXT_SESSION,
    POOL_SYSTEM,
    Json,
    ext_value,
    load,
    local_instant,
    parse_instant,
    search_all,
    set_ext,
    stable_id,
    strip_meta,
)
from telemedicine.find import area_of
from telemedicine.slotkeys import KEY_SYSTEM, key_tags, slot_keys
from telemedicine.templates import PlannedSlot, ScheduleTemplate, plan_slots

__all__ = ["PublishReport", "publish", "schedule_id", "search_all", "slot_id"]


@dataclass
class PublishReport:
    """What `publish` did: references created, closed (free → busy-unavailable), left as they
    were, and booked slots that the template no longer plans."""

    schedule: str
    created: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    unchanged: int = 0
    retagged: int = 0
    orphaned: list[str] = field(default_factory=list)


def schedule_id(practitioner_role: str) -> str:
    """The Schedule id of a PractitionerRole's clinic."""
    candidate = f"sch-{practitioner_role}"
    return candidate if len(candidate) <= 64 else stable_id("sch", practitioner_role)


def slot_id(schedule: str, start: datetime) -> str:
    """The deterministic Slot id of a schedule's slot starting at `start`."""
    return stable_id("slot", schedule, start.isoformat())


def _provider(t: ScheduleTemplate) -> Json:
    ref: Json = {"reference": f"PractitionerRole/{t.practitioner_role}"}
    if t.practitioner_display:
        ref["display"] = t.practitioner_display
    return ref


def _organization(t: ScheduleTemplate) -> Json:
    ref: Json = {"reference": f"Organization/{t.organization}"}
    if t.organization_display:
        ref["display"] = t.organization_display
    return ref


def schedule_resource(t: ScheduleTemplate, first: date, last: date, tz: ZoneInfo) -> Json:
    """The FHIR Schedule of a template, planning horizon `first`..`last`."""
    area = _area(t)
    actors = [_provider(t)]
    if t.practitioner:
        actors.append({"reference": f"Practitioner/{t.practitioner}"})
    doc: Json = {
        "resourceType": "Schedule",
        "active": True,
        "specialty": [{"coding": [dict(t.specialty)]}],
        "actor": actors,
        "planningHorizon": {
            "start": local_instant(datetime.combine(first, datetime.min.time(), tz)),
            "end": local_instant(datetime.combine(last, datetime.max.time().replace(microsecond=0), tz)),
        },
        "extension": [{"url": EXT_ORGANIZATION, "valueReference": _organization(t)}],
    }
    if area:
        doc["extension"].append({"url": EXT_AREA, "extension": area})
    if t.comment:
        doc["comment"] = t.comment
    return doc


def _area(t: ScheduleTemplate) -> list[Json]:
    return [{"url": k, "valueCode": v} for k, v in (("county", t.county), ("township", t.township)) if v]


def slot_tags(t: ScheduleTemplate, start: datetime) -> list[dict[str, str]]:
    """The search keys of a slot of `t` starting at (local) `start` (`telemedicine.slotkeys`)."""
    keys = slot_keys(
        start.date(),
        specialty=t.specialty.get("code"),
        organization=t.organization,
        county=t.county,
        practitioner_role=t.practitioner_role,
    )
    return key_tags(keys)


def _with_keys(t: ScheduleTemplate, slot: Json, start: datetime) -> Json:
    """`slot` with the template's search keys and area (kept tags of other systems)."""
    out = dict(slot)
    others = [g for g in (out.get("meta") or {}).get("tag", []) if g.get("system") != KEY_SYSTEM]
    out["meta"] = {**(out.get("meta") or {}), "tag": [*others, *slot_tags(t, start)]}
    out["extension"] = [e for e in out.get("extension", []) if e.get("url") != EXT_AREA]
    if _area(t):
        out["extension"].append({"url": EXT_AREA, "extension": _area(t)})
    return out


def slot_resource(t: ScheduleTemplate, schedule: str, planned: PlannedSlot) -> Json:
    """The FHIR Slot of one planned slot (free, nobody booked), with its search keys."""
    pool = "referral" if planned.reserved else "general"
    slot: Json = {
        "resourceType": "Slot",
        "schedule": {"reference": f"Schedule/{schedule}"},
        "status": "free",
        "start": local_instant(planned.start),
        "end": local_instant(planned.end),
        "specialty": [{"coding": [dict(t.specialty)]}],
        "serviceCategory": [{"coding": [{"system": POOL_SYSTEM, "code": pool}]}],
        "extension": [
            {"url": EXT_CAPACITY, "valuePositiveInt": planned.capacity},
            {"url": EXT_BOOKED, "valueUnsignedInt": 0},
            {"url": EXT_PROVIDER, "valueReference": _provider(t)},
            {"url": EXT_ORGANIZATION, "valueReference": _organization(t)},
            {"url": EXT_SESSION, "valueCode": planned.session},
        ],
    }
    return _with_keys(t, slot, planned.start)


def _refresh_keys(
    repo: ResourceRepository,
    t: ScheduleTemplate,
    stored: StoredResource,
    start: datetime,
    report: PublishReport,
) -> None:
    """A slot published before: left as it is, unless its search keys or area are not the
    template's (published by an older version, or the template moved it): then rewritten."""
    slot = load(stored)
    fresh = _with_keys(t, strip_meta(slot), start)
    tags = [g for g in (slot.get("meta") or {}).get("tag", []) if g.get("system") == KEY_SYSTEM]
    if tags == slot_tags(t, start) and area_of(slot) == area_of(fresh):
        report.unchanged += 1
        return
    repo.update("Slot", stored.id, fresh, if_match=stored.version_id)
    report.retagged += 1


def publish(
    repo: ResourceRepository,
    template: ScheduleTemplate,
    first: date,
    last: date,
    calendar: HolidayCalendar,
    tz: str,
) -> PublishReport:
    """Write the Schedule and the slots of `first`..`last` (module docstring). Runs in the
    caller's unit of work. Raises: InvalidInput (bad template), the store's errors."""
    zone = ZoneInfo(tz)
    sid = schedule_id(template.practitioner_role)
    report = PublishReport(f"Schedule/{sid}")
    planned = plan_slots(template, first, last, calendar, zone)
    repo.update("Schedule", sid, {**schedule_resource(template, first, last, zone), "id": sid})
    existing = {
        s.id: s
        for s in search_all(repo, "Slot", [("schedule", f"Schedule/{sid}")])
        if first <= parse_instant(load(s)["start"], "Slot.start").astimezone(zone).date() <= last
    }
    wanted = {slot_id(sid, p.start): p for p in planned}
    for new_id, p in wanted.items():
        if new_id in existing:
            _refresh_keys(repo, template, existing[new_id], p.start, report)
            continue
        stored = repo.create({**slot_resource(template, sid, p), "id": new_id}, id=new_id)
        report.created.append(stored.reference)
    for old_id, stored in existing.items():
        if old_id in wanted:
            continue
        slot = load(stored)
        if int(ext_value(slot, EXT_BOOKED, "UnsignedInt") or 0) > 0:
            report.orphaned.append(stored.reference)
        elif slot.get("status") == "free":
            closed = strip_meta(slot)
            closed["status"] = "busy-unavailable"
            closed["comment"] = "停诊 (no longer in the published schedule)"
            set_ext(closed, EXT_BOOKED, "UnsignedInt", 0)
            repo.update("Slot", old_id, closed, if_match=stored.version_id)
            report.closed.append(stored.reference)
    return report
