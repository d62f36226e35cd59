"""China public-holiday calendar (法定节假日 and 调休 working days), loaded from a JSON config file.

File shape (see `telemedicine/data/holidays-cn.json`): `{"years": {"2026": {"holidays": [{"name",
"start", "end"}], "working_days": ["2026-02-14", ...], "provisional": bool}}}`.

May import: the standard library, `ehr_store` (error kinds).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from importlib.resources import files
from pathlib import Path

from ehr_store import InvalidInput


@dataclass(frozen=True)
class HolidayCalendar:
    """Days off and 调休 working days. `years`: years the file covers; `provisional`: years
    whose arrangement was not yet officially published (statutory days only)."""

    holidays: dict[date, str]
    working_days: frozenset[date]
    years: frozenset[int]
    provisional: frozenset[int]

    def holiday_name(self, day: date) -> str | None:
        """The holiday `day` belongs to (e.g. "春节"), or None."""
        return self.holidays.get(day)

    def is_makeup_working_day(self, day: date) -> bool:
        """True for a weekend day declared a working day (调休上班)."""
        return day in self.working_days

    def is_working_day(self, day: date) -> bool:
        """Monday–Friday unless a holiday; Saturday/Sunday only when declared working days."""
        if day in self.working_days:
            return True
        return day.weekday() < 5 and day not in self.holidays


def _parse_day(text: str, where: str) -> date:
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise InvalidInput(f"holiday calendar: {where} {text!r} is not a date (YYYY-MM-DD)") from None


def parse_calendar(document: dict[str, object]) -> HolidayCalendar:
    """Build a calendar from the file's JSON object. Raises: InvalidInput (malformed file)."""
    years = document.get("years")
    if not isinstance(years, dict):
        raise InvalidInput("holiday calendar: a `years` object is required")
    holidays: dict[date, str] = {}
    working: set[date] = set()
    provisional: set[int] = set()
    for year, spec in years.items():
        if not str(year).isdigit() or not isinstance(spec, dict):
            raise InvalidInput(f"holiday calendar: year {year!r} must map to an object")
        if spec.get("provisional"):
            provisional.add(int(year))
        for item in spec.get("holidays", []):
            start = _parse_day(item.get("start"), f"{year} holiday start")
            end = _parse_day(item.get("end", item.get("start")), f"{year} holiday end")
            if end < start:
                raise InvalidInput(f"holiday calendar: {item.get('name')} ends before it starts")
            day = start
            while day <= end:
                holidays[day] = str(item.get("name", "holiday"))
                day += timedelta(days=1)
        for text in spec.get("working_days", []):
            working.add(_parse_day(text, f"{year} working day"))
    clash = working & holidays.keys()
    if clash:
        raise InvalidInput(f"holiday calendar: {sorted(clash)[0]} is both a holiday and a working day")
    return HolidayCalendar(
        holidays, frozenset(working), frozenset(int(y) for y in years), frozenset(provisional)
    )


def load_calendar(path: Path | None = None) -> HolidayCalendar:
    """The calendar from `path`, or the shipped `holidays-cn.json`.

    Raises: InvalidInput (unreadable or malformed file).
    """
    try:
        if path is None:
            text = (files("telemedicine") / "data" / "holidays-cn.json").read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        document = json.loads(text)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"holiday calendar {path or 'holidays-cn.json'} cannot be read: {exc}") from None
    return parse_calendar(document)
