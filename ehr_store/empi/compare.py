"""Field comparators: two values in, one agreement level out (None when either is missing).

Levels are the keys weighed in the rules file (`ehr_store.empi.config.FIELD_LEVELS`).
Pure functions; similarity via rapidfuzz.

May import: rapidfuzz, the standard library, `ehr_store.empi.features`.
"""

from __future__ import annotations

from datetime import date

from rapidfuzz.distance import Levenshtein
from rapidfuzz.fuzz import ratio

from ehr_store.empi.features import Features


def compare_family(
    a: Features, b: Features, *, equivalents: frozenset[tuple[str, str]] = frozenset()
) -> str | None:
    """Surname: `exact` (same characters), `homophone` (same pinyin, or a configured
    equivalent pair such as 黄/王), else `different`."""
    if not a.family or not b.family:
        return None
    if a.family == b.family:
        return "exact"
    if (a.family_py and a.family_py == b.family_py) or (a.family, b.family) in equivalents:
        return "homophone"
    return "different"


def compare_given(a: Features, b: Features, *, min_ratio: float = 0.5) -> str | None:
    """Given name: `exact`; `homophone` (same pinyin: 晓东/小东); `similar` (one character
    differs, or pinyin similarity ratio >= `min_ratio`, rapidfuzz 0-1); else `different`.
    """
    if not a.given or not b.given:
        return None
    if a.given == b.given:
        return "exact"
    if a.given_py and a.given_py == b.given_py:
        return "homophone"
    if len(a.given) > 1 and len(b.given) > 1 and Levenshtein.distance(a.given, b.given) <= 1:
        return "similar"
    if len(a.given) > 1 and len(b.given) > 1 and ratio(a.given_py, b.given_py) / 100 >= max(min_ratio, 0.75):
        return "similar"
    return "different"


def _parse(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def compare_birth_date(a: str, b: str) -> str | None:
    """Birth dates (`YYYY-MM-DD`): `exact`; `transposed` (day and month swapped);
    `year_off` (same month and day, years one apart or one digit apart); `same_month`
    (same year and month, day differs); else `different`.
    """
    da, db = _parse(a), _parse(b)
    if da is None or db is None:
        return None
    if da == db:
        return "exact"
    if da.year == db.year and da.month == db.day and da.day == db.month:
        return "transposed"
    if (da.month, da.day) == (db.month, db.day) and (
        abs(da.year - db.year) == 1 or Levenshtein.distance(str(da.year), str(db.year)) == 1
    ):
        return "year_off"
    if (da.year, da.month) == (db.year, db.month):
        return "same_month"
    return "different"


def compare_sex(a: str, b: str) -> str | None:
    """Administrative gender: `same` / `different`; `unknown`/`other` count as missing."""
    known = ("male", "female")
    if a not in known or b not in known:
        return None
    return "same" if a == b else "different"


def compare_phone(a: tuple[str, ...], b: tuple[str, ...]) -> str | None:
    """Any normalised phone in common: `same`, else `different`."""
    if not a or not b:
        return None
    return "same" if set(a) & set(b) else "different"


def compare_address(a: Features, b: Features) -> str | None:
    """Address by GB/T 2260 county code, township, village: `village` (all three agree),
    `town` (county and township), `county` (county only), else `different`.
    Missing county codes fall back to township/village names alone.
    """
    if not (a.county or a.town) or not (b.county or b.town):
        return None
    county_ok = a.county == b.county if a.county and b.county else None
    if county_ok is False:
        return "different"
    if a.town and b.town and a.town == b.town:
        if a.village and b.village and a.village == b.village:
            return "village"
        return "town"
    if county_ok:
        return "county"
    return "different"
