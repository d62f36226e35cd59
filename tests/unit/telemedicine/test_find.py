"""`$find` over published slots (memory, SQLite, PostgreSQL): filters, order, chunks of days,
pools, search keys of slots published by an older version."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from world import CARDIO, template

from ehr_store import InvalidInput, Store
from telemedicine import FindQuery, ScheduleTemplate, SessionTemplate, find_slots, load_calendar, publish
from telemedicine.fhir import load, strip_meta
from telemedicine.slotkeys import KEY_SYSTEM, query_key, slot_keys

TZ = "Asia/Shanghai"
MONDAY = date(2026, 3, 9)  # three weeks without a holiday (2026 calendar)
NOW = datetime(2026, 3, 1, tzinfo=UTC)
RESP = {"system": "urn:qyhie:department", "code": "03.01", "display": "呼吸内科"}


def _other(role: str, org: str, county: str, specialty: dict[str, str] = CARDIO) -> ScheduleTemplate:
    """Tue and Thu afternoons (12 × 15 min)."""
    sessions = tuple(SessionTemplate(d, "afternoon", 15, 1, 0.25) for d in (1, 3))
    return ScheduleTemplate(role, org, specialty, sessions, county=county, township=f"{county}001")


@pytest.fixture
def world(store: Store) -> tuple[Store, date]:
    monday = MONDAY
    calendar = load_calendar()
    with store.unit_of_work(write=True) as uow:
        for t in (
            template(),
            _other("LZ-card-1", "org-LZRMYY", "441821"),
            _other("QX-resp", "org-QXRMYY", "441823", RESP),
        ):
            publish(uow.resources, t, monday, monday + timedelta(days=20), calendar, TZ)
        uow.commit()
    return store, monday


def _find(store: Store, now: datetime | None = None, **kw: Any) -> list[dict[str, Any]]:
    with store.unit_of_work() as uow:
        found = find_slots(uow.resources, FindQuery(**kw), now=now or NOW, tz=TZ)
    return [load(s) for s in found]


def _orgs(slots: list[dict[str, Any]]) -> set[str]:
    return {
        e["valueReference"]["reference"] for s in slots for e in s["extension"] if "organization" in e["url"]
    }


def test_specialty_and_county_pick_one_hospital_earliest_first(world: tuple[Store, date]) -> None:
    store, monday = world
    found = _find(
        store, start=monday, end=monday + timedelta(days=20), specialty="03.04", county="441821", count=30
    )
    assert _orgs(found) == {"Organization/org-LZRMYY"}
    starts = [s["start"] for s in found]
    assert (
        starts == sorted(starts) and len(found) == 30
    )  # 9 general slots a session: over 4 sessions, 3 chunks
    assert all(
        s["status"] == "free" and s["serviceCategory"][0]["coding"][0]["code"] == "general" for s in found
    )


def test_city_prefix_township_hospital_and_specialist(world: tuple[Store, date]) -> None:
    store, monday = world
    week = {"start": monday, "end": monday + timedelta(days=6), "count": 500}
    city = _find(store, specialty="urn:qyhie:department|03.04", county="4418", **week)
    assert _orgs(city) == {"Organization/org-QYRMYY", "Organization/org-LZRMYY"}
    assert _find(store, specialty="other-system|03.04", **week) == []
    assert _orgs(_find(store, township="441823001", **week)) == {"Organization/org-QXRMYY"}
    assert _orgs(_find(store, organization="org-QYRMYY", **week)) == {"Organization/org-QYRMYY"}
    mine = _find(store, practitioner_role="LZ-card-1", **week)
    assert mine and {s["extension"][2]["valueReference"]["reference"] for s in mine} == {
        "PractitionerRole/LZ-card-1"
    }
    every = _find(store, **week)
    assert len(every) == 2 * 16 + 2 * 9 + 2 * 9  # general places of the week, all three specialists
    with_referrals = _find(store, include_reserved=True, **week)
    assert len(with_referrals) == 2 * 16 + 4 * 12


def test_started_and_full_slots_are_not_offered(world: tuple[Store, date]) -> None:
    store, monday = world
    first = _find(store, start=monday, end=monday, organization="org-QYRMYY", count=100)
    noon_minus = datetime.fromisoformat(first[5]["start"]).astimezone(UTC)
    later = _find(store, now=noon_minus, start=monday, end=monday, organization="org-QYRMYY", count=100)
    assert later[0]["start"] == first[5]["start"] and len(later) == len(first) - 5
    with store.unit_of_work(write=True) as uow:
        stored = uow.resources.read("Slot", first[6]["id"])
        uow.resources.update("Slot", stored.id, {**strip_meta(load(stored)), "status": "busy"})
        uow.commit()
    again = _find(store, now=noon_minus, start=monday, end=monday, organization="org-QYRMYY", count=100)
    assert first[6]["id"] not in {s["id"] for s in again} and len(again) == len(later) - 1


def test_slots_of_an_older_version_get_their_keys_on_republish(world: tuple[Store, date]) -> None:
    store, monday = world
    query = {"start": monday, "end": monday, "specialty": "03.04", "county": "441802"}
    slot_id = _find(store, **query)[0]["id"]
    with store.unit_of_work(write=True) as uow:  # as published before the keys existed
        doc = strip_meta(load(uow.resources.read("Slot", slot_id)))
        doc.pop("meta", None)
        doc["extension"] = [e for e in doc["extension"] if "schedule-area" not in e["url"]]
        uow.resources.update("Slot", slot_id, doc)
        uow.commit()
    assert slot_id not in {s["id"] for s in _find(store, **query)}
    with store.unit_of_work(write=True) as uow:
        report = publish(uow.resources, template(), monday, monday + timedelta(days=20), load_calendar(), TZ)
        uow.commit()
    assert report.retagged == 1 and not report.created and report.unchanged > 0
    assert _find(store, **query)[0]["id"] == slot_id


def test_keys_and_bad_ranges() -> None:
    keys = slot_keys(
        date(2026, 3, 2), specialty="03.04", organization="org-A", county="441802001", practitioner_role=None
    )
    assert keys == [
        "2026-03-02",
        "2026-03-02/s/03.04",
        "2026-03-02/o/org-A",
        "2026-03-02/c/441802",
        "2026-03-02/s/03.04/c/441802",
        "2026-03-02/s/03.04/o/org-A",
    ]
    assert (
        query_key(specialty="03.04", organization=None, county="4418", practitioner_role=None) == "/s/03.04"
    )
    assert query_key(specialty=None, organization=None, county=None, practitioner_role="r1") == "/r/r1"
    assert KEY_SYSTEM.endswith("/CodeSystem/slot-search-key")
    with pytest.raises(InvalidInput):
        find_slots(None, FindQuery(date(2026, 3, 2), date(2026, 8, 1)), now=datetime.now(UTC), tz=TZ)  # type: ignore[arg-type]
