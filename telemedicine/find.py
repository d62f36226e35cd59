"""`Appointment/$find`: open slots by specialty, hospital, county/township, date range (号源查询).

The Slots carry search keys (`telemedicine.slotkeys`: local day × the most selective filter in
`meta.tag`). `find_slots` walks the date range in growing chunks of days (1, 2, 4, then 7),
asks the store for the Slots tagged with the chunk's days and the query's key (one criterion:
no per-row probes, so the plan does not depend on planner statistics), checks every filter on
each Slot (`slot_matches`: status `free`, pool, start, ...) and stops once it has `count`
slots: a query reads the slots of a few days, not the whole timetable, whatever its size.
Results are sorted by start, then id.

May import: the standard library, `ehr_store`, `telemedicine.*`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from ehr_store import InvalidInput, ResourceRepository, StoredResource
from telemedicine.fhir import (
    EXT_AREA,
    EXT_ORGANIZATION,
    EXT_PROVIDER,
    POOL_SYSTEM,
    Json,
    ext_value,
    load,
    parse_instant,
    search_all,
)
from telemedicine.slotkeys import query_key, tag_param

CHUNKS = (1, 2, 4)
"""Days read by the first queries; then 7 at a time."""
MAX_DAYS = 120


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

    @property
    def specialty_code(self) -> str | None:
        """The code part of `specialty`."""
        return self.specialty.rpartition("|")[2] if self.specialty else None


def area_of(resource: Json) -> dict[str, str]:
    """`{county, township}` of the `schedule-area` extension of a Schedule or Slot."""
    for ext in resource.get("extension", []):
        if ext.get("url") == EXT_AREA:
            return {str(e.get("url")): str(e.get("valueCode")) for e in ext.get("extension", [])}
    return {}


def _reference(resource: Json, url: str) -> str:
    return str((ext_value(resource, url, "Reference") or {}).get("reference", ""))


def _has_specialty(slot: Json, specialty: str) -> bool:
    system, bar, code = specialty.rpartition("|")
    return any(
        c.get("code") == code and (not bar or (c.get("system") or "") == system)
        for concept in slot.get("specialty", [])
        for c in concept.get("coding", [])
    )


def _pool(slot: Json) -> str:
    for concept in slot.get("serviceCategory", []):
        for c in concept.get("coding", []):
            if c.get("system") == POOL_SYSTEM:
                return str(c.get("code"))
    return "general"


def slot_matches(slot: Json, q: FindQuery, begin: datetime, stop: datetime) -> bool:
    """Whether a Slot passes every filter of `q` and starts in [`begin`, `stop`)."""
    area = area_of(slot)
    checks = (
        slot.get("status") == "free",
        q.include_reserved or _pool(slot) == "general",
        not q.specialty or _has_specialty(slot, q.specialty),
        not q.organization or _reference(slot, EXT_ORGANIZATION) == f"Organization/{q.organization}",
        not q.practitioner_role
        or _reference(slot, EXT_PROVIDER) == f"PractitionerRole/{q.practitioner_role}",
        not q.county or area.get("county", "").startswith(q.county),
        not q.township or area.get("township") == q.township,
    )
    return all(checks) and begin <= parse_instant(slot["start"], "Slot.start") < stop


def _chunks(first: date, last: date) -> Iterator[list[date]]:
    day, sizes = first, list(CHUNKS)
    while day <= last:
        size = sizes.pop(0) if sizes else 7
        chunk = [day + timedelta(days=i) for i in range(size) if day + timedelta(days=i) <= last]
        yield chunk
        day = chunk[-1] + timedelta(days=1)


def find_slots(repo: ResourceRepository, q: FindQuery, *, now: datetime, tz: str) -> list[StoredResource]:
    """Free slots matching `q`, earliest first, at most `q.count`, none already started.

    Raises: InvalidInput (end before start, a range over 120 days)."""
    if q.end < q.start or (q.end - q.start).days > MAX_DAYS:
        raise InvalidInput(
            f"the date range must run forwards and cover at most {MAX_DAYS} days",
            expression=("Parameters.parameter.where(name='end')",),
        )
    zone = ZoneInfo(tz)
    begin = max(datetime.combine(q.start, datetime.min.time(), zone), now.astimezone(zone))
    stop = datetime.combine(q.end + timedelta(days=1), datetime.min.time(), zone)
    suffix = query_key(
        specialty=q.specialty_code,
        organization=q.organization,
        county=q.county,
        practitioner_role=q.practitioner_role,
    )
    found: list[tuple[datetime, str, StoredResource]] = []
    for days in _chunks(begin.date(), q.end):
        for stored in search_all(repo, "Slot", [tag_param(days, suffix)]):
            slot = load(stored)
            if slot_matches(slot, q, begin, stop):
                found.append((parse_instant(slot["start"], "Slot.start"), stored.id, stored))
        if len(found) >= q.count:
            break
    found.sort(key=lambda item: (item[0], item[1]))
    return [stored for _, _, stored in found[: q.count]]
