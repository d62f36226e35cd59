"""Search keys of a Slot (`meta.tag`, code system `KEY_SYSTEM`): what makes `$find` fast.

The store answers a search by driving it from its most selective criterion and probing the
others row by row. A Slot search driven by `specialty` (or by a list of Schedules) reads every
slot ever published for that specialty, past ones included, so `$find` slowed down with the
size of the whole timetable (p95 over 1 s at 200 specialists × 90 days on SQLite). Each Slot
therefore carries a few tags that combine its local day with one filter of `$find`:

    2026-03-02                      the day (no filter)
    2026-03-02/s/03.04              specialty code
    2026-03-02/o/org-QYRMYY         hospital Organization id
    2026-03-02/c/441802             county (GB/T 2260, 6 digits)
    2026-03-02/r/role-1             specialist (PractitionerRole id)
    2026-03-02/s/03.04/c/441802     specialty in a county
    2026-03-02/s/03.04/o/org-QYRMYY specialty at a hospital

so `$find` reads only the slots of a few days that match its most selective filter (`_tag`
is a standard search parameter, FHIR R4B search §3.1.1.4.x, Resource.meta.tag: "tags used to
relate resources to process and workflow"). The tags are an index, not the truth: `$find`
still checks every filter on the Slot itself (`find.slot_matches`).

May import: the standard library, `telemedicine.fhir`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from telemedicine.fhir import CS

KEY_SYSTEM = f"{CS}/slot-search-key"
COUNTY_DIGITS = 6


def county_key(county: str | None) -> str | None:
    """The county part of a key: the first 6 digits of a GB/T 2260 code, else None."""
    if county and len(county) >= COUNTY_DIGITS and county[:COUNTY_DIGITS].isdigit():
        return county[:COUNTY_DIGITS]
    return None


def slot_keys(
    day: date,
    *,
    specialty: str | None,
    organization: str | None,
    county: str | None,
    practitioner_role: str | None,
) -> list[str]:
    """The key codes of a slot on local `day` (module docstring), in a fixed order."""
    d = day.isoformat()
    c = county_key(county)
    keys = [d]
    parts = [("s", specialty), ("o", organization), ("c", c), ("r", practitioner_role)]
    keys += [f"{d}/{kind}/{value}" for kind, value in parts if value]
    if specialty and c:
        keys.append(f"{d}/s/{specialty}/c/{c}")
    if specialty and organization:
        keys.append(f"{d}/s/{specialty}/o/{organization}")
    return keys


def query_key(
    *,
    specialty: str | None,
    organization: str | None,
    county: str | None,
    practitioner_role: str | None,
) -> str:
    """The key suffix (`/s/03.04/c/441802`, `""` for the bare day) that narrows a `$find` most:
    the specialist, else specialty with hospital or county, else one of them alone. A county
    prefix shorter than 6 digits (a city, the province) is not a key: it is checked on the slot."""
    c = county_key(county) if county and len(county) == COUNTY_DIGITS else None
    if practitioner_role:
        return f"/r/{practitioner_role}"
    if specialty and organization:
        return f"/s/{specialty}/o/{organization}"
    if specialty and c:
        return f"/s/{specialty}/c/{c}"
    for kind, value in (("o", organization), ("s", specialty), ("c", c)):
        if value:
            return f"/{kind}/{value}"
    return ""


def _escape(code: str) -> str:
    """A token code with FHIR search's special characters escaped (FHIR R4B search §3.1.1.1.5)."""
    for char in ("\\", ",", "$", "|"):
        code = code.replace(char, "\\" + char)
    return code


def tag_param(days: Iterable[date], suffix: str) -> tuple[str, str]:
    """The `_tag` search parameter matching any of `days` with key `suffix`. Codes without the
    system: an OR of codes is one index range per code, an OR of `system|code` pairs made the
    store scan every Slot tag on SQLite (40 ms instead of 0.5 ms); the day prefix keeps the
    codes distinct from other tags, and `$find` checks each Slot anyway."""
    values = [_escape(day.isoformat() + suffix) for day in days]
    return ("_tag", ",".join(values))


def key_tags(keys: Iterable[str]) -> list[dict[str, str]]:
    """`meta.tag` Codings of key codes."""
    return [{"system": KEY_SYSTEM, "code": k} for k in keys]
