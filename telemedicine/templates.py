"""Schedule templates (出诊模板) and slot generation (号源生成): pure functions, no store.

A `ScheduleTemplate` says when one specialist (a PractitionerRole) sits: per weekday, morning
(上午) and/or afternoon (下午) sessions with a slot length and a capacity per slot, a share of
each session reserved for referrals from lower-level facilities (分级诊疗), and stop-clinic
days (停诊). `plan_slots(template, first, last, calendar, tz)` lists the slots of a date range:

- public holidays (法定节假日, from the `HolidayCalendar`) have no sessions;
- a 调休 working day (a weekend day declared a working day) runs the sessions of the weekday
  named by `makeup_follows` (default Monday), unless the template has its own for that weekday;
- stop-clinic days remove the whole day or one session;
- in each session `round(reserved_share × slots)` slots, spread evenly, are in the `referral`
  pool; the others are `general`.

May import: the standard library, `ehr_store` (error kinds), `telemedicine.calendar`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from ehr_store import InvalidInput
from telemedicine.calendar import HolidayCalendar

Session = Literal["morning", "afternoon"]
DEFAULT_HOURS: dict[str, tuple[time, time]] = {
    "morning": (time(8, 0), time(12, 0)),
    "afternoon": (time(14, 30), time(17, 30)),
}


@dataclass(frozen=True)
class SessionTemplate:
    """One weekly session: `weekday` 0 = Monday; times local; `capacity` patients per slot."""

    weekday: int
    session: Session
    slot_minutes: int = 15
    capacity: int = 1
    reserved_share: float = 0.0
    start: time | None = None
    end: time | None = None

    def hours(self) -> tuple[time, time]:
        """(start, end) local time, the session's defaults when not given."""
        default = DEFAULT_HOURS[self.session]
        return self.start or default[0], self.end or default[1]


@dataclass(frozen=True)
class StopClinic:
    """停诊: no clinic on `day` (`session` None = the whole day), with the reason shown to patients."""

    day: date
    session: Session | None = None
    reason: str = "停诊"


@dataclass(frozen=True)
class ScheduleTemplate:
    """A specialist's weekly clinic. `practitioner_role`: PractitionerRole id; `organization`:
    the hospital's Organization id; `specialty`: a Coding (system, code, display); `county`
    (GB/T 2260) and `township` codes place the hospital for `$find` filters."""

    practitioner_role: str
    organization: str
    specialty: Mapping[str, str]
    sessions: tuple[SessionTemplate, ...]
    practitioner_display: str = ""
    organization_display: str = ""
    practitioner: str | None = None
    county: str | None = None
    township: str | None = None
    stop_clinic: tuple[StopClinic, ...] = ()
    registration_fee: Decimal | None = None
    makeup_follows: int | None = 0
    comment: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlannedSlot:
    """One slot to publish: aware local `start`/`end`, its session and pool."""

    start: datetime
    end: datetime
    session: Session
    capacity: int
    reserved: bool


def _check(template: ScheduleTemplate) -> None:
    for s in template.sessions:
        begin, finish = s.hours()
        problems = [
            (not 0 <= s.weekday <= 6, "weekday must be 0 (Monday) … 6 (Sunday)"),
            (s.session not in DEFAULT_HOURS, "session must be morning or afternoon"),
            (not 5 <= s.slot_minutes <= 240, "slot_minutes must be 5 … 240"),
            (not 1 <= s.capacity <= 100, "capacity must be 1 … 100"),
            (not 0.0 <= s.reserved_share <= 1.0, "reserved_share must be 0 … 1"),
            (finish <= begin, "the session must end after it starts"),
        ]
        for bad, message in problems:
            if bad:
                raise InvalidInput(f"schedule template {template.practitioner_role}: {message}")


def reserved_indices(count: int, share: float) -> frozenset[int]:
    """Indices of the `round(share × count)` reserved slots among `count`, spread evenly."""
    k = min(count, round(share * count))
    if k <= 0:
        return frozenset()
    return frozenset(int(i * count / k) for i in range(k))


def _sessions_of(template: ScheduleTemplate, day: date, calendar: HolidayCalendar) -> list[SessionTemplate]:
    if calendar.holiday_name(day) is not None:
        return []
    own = [s for s in template.sessions if s.weekday == day.weekday()]
    if calendar.is_makeup_working_day(day) and not own and template.makeup_follows is not None:
        return [s for s in template.sessions if s.weekday == template.makeup_follows]
    return own


def _session_slots(s: SessionTemplate, day: date, tz: ZoneInfo) -> Iterator[PlannedSlot]:
    begin, finish = s.hours()
    start = datetime.combine(day, begin, tz)
    stop = datetime.combine(day, finish, tz)
    length = timedelta(minutes=s.slot_minutes)
    starts = []
    while start + length <= stop:
        starts.append(start)
        start += length
    reserved = reserved_indices(len(starts), s.reserved_share)
    for i, moment in enumerate(starts):
        yield PlannedSlot(moment, moment + length, s.session, s.capacity, i in reserved)


def plan_slots(
    template: ScheduleTemplate, first: date, last: date, calendar: HolidayCalendar, tz: str | ZoneInfo
) -> list[PlannedSlot]:
    """The slots of `template` from `first` to `last` inclusive, in time order (module docstring).

    Raises: InvalidInput (a bad template, or a range longer than 400 days).
    """
    _check(template)
    if last < first or (last - first).days > 400:
        raise InvalidInput("the planning range must run forwards and cover at most 400 days")
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    stops = {(c.day, c.session) for c in template.stop_clinic}
    out: list[PlannedSlot] = []
    day = first
    while day <= last:
        if (day, None) not in stops:
            for s in sorted(_sessions_of(template, day, calendar), key=lambda s: s.hours()[0]):
                if (day, s.session) not in stops:
                    out.extend(_session_slots(s, day, zone))
        day += timedelta(days=1)
    return out


def template_from_json(document: Any) -> ScheduleTemplate:
    """A `ScheduleTemplate` from its JSON form (field names as in the dataclasses; times
    `"08:00"`, days `"2026-03-02"`). Raises: InvalidInput (one issue per bad field)."""
    from pydantic import TypeAdapter, ValidationError

    from ehr_store import Issue

    try:
        return TypeAdapter(ScheduleTemplate).validate_python(document)
    except ValidationError as exc:
        issues = [
            Issue(
                "error",
                "invalid",
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}",
                ("template." + ".".join(str(p) for p in e["loc"]),),
            )
            for e in exc.errors()
        ]
        raise InvalidInput(issues=issues) from None
