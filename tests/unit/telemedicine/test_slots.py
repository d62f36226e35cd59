"""Slot generation from templates: holidays, 调休 working days, stop-clinic days, reserved share."""

from __future__ import annotations

from datetime import date

import pytest
from world import CARDIO, template

from ehr_store import InvalidInput
from telemedicine import (
    ScheduleTemplate,
    SessionTemplate,
    StopClinic,
    load_calendar,
    plan_slots,
    reserved_indices,
    template_from_json,
)

TZ = "Asia/Shanghai"


@pytest.fixture(scope="module")
def calendar():  # type: ignore[no-untyped-def]
    return load_calendar()


def test_shipped_calendar_has_2026_official_and_2027_provisional(calendar) -> None:  # type: ignore[no-untyped-def]
    assert calendar.holiday_name(date(2026, 2, 17)) == "春节"
    assert calendar.is_makeup_working_day(date(2026, 2, 14))  # Saturday 调休上班
    assert calendar.is_working_day(date(2026, 2, 14)) and not calendar.is_working_day(date(2026, 2, 16))
    assert not calendar.is_working_day(date(2026, 10, 7))
    assert 2027 in calendar.provisional and calendar.holiday_name(date(2027, 2, 6)) == "春节"


def test_weekly_sessions_skip_public_holidays(calendar) -> None:  # type: ignore[no-untyped-def]
    # 10-05 (Mon) and 10-07 (Wed) are National Day holidays; Saturday 10-10 is a 调休 working day.
    slots = plan_slots(template(), date(2026, 10, 1), date(2026, 10, 14), calendar, TZ)
    days = sorted({s.start.date() for s in slots})
    assert days == [date(2026, 10, 10), date(2026, 10, 12), date(2026, 10, 14)]
    assert len(slots) == 3 * 16
    first = slots[0]
    assert first.start.isoformat() == "2026-10-10T08:00:00+08:00" and first.end.minute == 15


def test_makeup_working_day_follows_monday(calendar) -> None:  # type: ignore[no-untyped-def]
    # Saturday 2026-10-10 is a 调休 working day: it runs Monday's sessions.
    slots = plan_slots(template(), date(2026, 10, 10), date(2026, 10, 10), calendar, TZ)
    assert len(slots) == 16 and slots[0].session == "morning"
    no_makeup = plan_slots(
        template(makeup_follows=None), date(2026, 10, 10), date(2026, 10, 10), calendar, TZ
    )
    assert no_makeup == []


def test_stop_clinic_day_and_session(calendar) -> None:  # type: ignore[no-untyped-def]
    both = ScheduleTemplate(
        "R1",
        "org-QYRMYY",
        CARDIO,
        (SessionTemplate(0, "morning", 30), SessionTemplate(0, "afternoon", 30)),
        stop_clinic=(StopClinic(date(2026, 3, 2)), StopClinic(date(2026, 3, 9), "afternoon")),
    )
    slots = plan_slots(both, date(2026, 3, 2), date(2026, 3, 16), calendar, TZ)
    per_day = {d: sum(1 for s in slots if s.start.date() == d) for d in {s.start.date() for s in slots}}
    assert date(2026, 3, 2) not in per_day
    assert per_day[date(2026, 3, 9)] == 8  # morning only (4 h / 30 min)
    assert per_day[date(2026, 3, 16)] == 8 + 6  # morning and afternoon (14:30-17:30)


def test_reserved_share_is_spread_and_rounded(calendar) -> None:  # type: ignore[no-untyped-def]
    assert reserved_indices(16, 0.25) == frozenset({0, 4, 8, 12})
    assert reserved_indices(10, 0.0) == frozenset() and reserved_indices(3, 1.0) == frozenset({0, 1, 2})
    slots = plan_slots(template(share=0.25, capacity=2), date(2026, 3, 2), date(2026, 3, 2), calendar, TZ)
    assert sum(s.reserved for s in slots) == 4 and all(s.capacity == 2 for s in slots)


def test_bad_templates_are_refused(calendar) -> None:  # type: ignore[no-untyped-def]
    bad = ScheduleTemplate("R1", "org-X", CARDIO, (SessionTemplate(7, "morning"),))
    with pytest.raises(InvalidInput, match="weekday"):
        plan_slots(bad, date(2026, 3, 2), date(2026, 3, 3), calendar, TZ)
    with pytest.raises(InvalidInput) as caught:
        template_from_json(
            {
                "practitioner_role": "R1",
                "organization": "org-X",
                "specialty": {},
                "sessions": [{"weekday": 0, "session": "evening"}],
            }
        )
    assert any("session" in i.diagnostics for i in caught.value.issues)
    parsed = template_from_json(
        {
            "practitioner_role": "R1",
            "organization": "org-X",
            "specialty": CARDIO,
            "sessions": [{"weekday": 1, "session": "afternoon", "start": "14:00"}],
        }
    )
    assert parsed.sessions[0].hours()[0].hour == 14
