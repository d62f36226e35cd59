"""`Appointment/$find`: open slots by specialty, hospital, county/township, date range (号源查询).

One Slot search does the work (status `free`, `start` window, `specialty`, pool via
`service-category`, sorted by start); hospital, county, township and specialist filters first
pick the matching Schedules (their `slot-organization` and `schedule-area` extensions) and
narrow the Slot search to them with `schedule=`.

May import: the standard library, `ehr_store`, `telemedicine.*`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from ehr_store import InvalidInput, ResourceRepository, StoredResource
from telemedicine.fhir import EXT_AREA, EXT_ORGANIZATION, POOL_SYSTEM, Json, ext_value, load


@dataclass(frozen=True)
class FindQuery:
    """Filters of `$find`. `specialty`: a token (`code` or `system|code`); `organization`: the
    hospital's Organization id; `county`: GB/T 2260 code (prefix match, `4418` = the city);
    `township`: township code; `include_reserved`: also the referral pool (with a referral)."""

    start: date
    end: date
    specialty: str | None = None
    organization: str | None = None
    county: str | None = None
    township: str | None = None
    practitioner_role: str | None = None
    include_reserved: bool = False
    count: int = 50


def _area(schedule: Json) -> dict[str, str]:
    for ext in schedule.get("extension", []):
        if ext.get("url") == EXT_AREA:
            return {str(e.get("url")): str(e.get("valueCode")) for e in ext.get("extension", [])}
    return {}


def matching_schedules(repo: ResourceRepository, q: FindQuery) -> list[str]:
    """References of the active Schedules passing the hospital/area/specialist filters."""
    params = [("active", "true"), ("_count", "1000")]
    if q.specialty:
        params.append(("specialty", q.specialty))
    if q.practitioner_role:
        params.append(("actor", f"PractitionerRole/{q.practitioner_role}"))
    out = []
    for stored in repo.search("Schedule", params).matches:
        doc = load(stored)
        org = str((ext_value(doc, EXT_ORGANIZATION, "Reference") or {}).get("reference", ""))
        area = _area(doc)
        if q.organization and org != f"Organization/{q.organization}":
            continue
        if q.county and not area.get("county", "").startswith(q.county):
            continue
        if q.township and area.get("township") != q.township:
            continue
        out.append(stored.reference)
    return out


def find_slots(repo: ResourceRepository, q: FindQuery, *, now: datetime, tz: str) -> list[StoredResource]:
    """Free slots matching `q`, earliest first, at most `q.count`, none already started.

    Raises: InvalidInput (end before start, a range over 120 days)."""
    if q.end < q.start or (q.end - q.start).days > 120:
        raise InvalidInput(
            "the date range must run forwards and cover at most 120 days",
            expression=("Parameters.parameter.where(name='end')",),
        )
    zone = ZoneInfo(tz)
    begin = max(datetime.combine(q.start, datetime.min.time(), zone), now.astimezone(zone))
    stop = datetime.combine(q.end + timedelta(days=1), datetime.min.time(), zone)
    params = [
        ("status", "free"),
        ("start", f"ge{begin.isoformat(timespec='seconds')}"),
        ("start", f"lt{stop.isoformat(timespec='seconds')}"),
        ("_sort", "start"),
        ("_count", str(q.count)),
    ]
    if q.specialty:
        params.append(("specialty", q.specialty))
    if not q.include_reserved:
        params.append(("service-category", f"{POOL_SYSTEM}|general"))
    if q.organization or q.county or q.township or q.practitioner_role:
        schedules = matching_schedules(repo, q)
        if not schedules:
            return []
        params.append(("schedule", ",".join(schedules)))
    return repo.search("Slot", params).matches
