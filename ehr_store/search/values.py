"""Value semantics shared by extraction and querying: string normalisation, date ranges,
decimal ranges by significant figures (FHIR R4B search §3.1.1.5.4 date, §3.1.1.5.3 number).

May import: the standard library, `ehr_store.errors`.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache

__all__ = [
    "MAX_DT",
    "MIN_DT",
    "decimal_range",
    "normalize_string",
    "parse_date_range",
    "to_decimal",
]

MIN_DT = datetime(1, 1, 2, tzinfo=UTC)
"""Open lower bound of a range (a Period without start)."""
MAX_DT = datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)
"""Open upper bound of a range (a Period without end, an ongoing encounter)."""
_US = timedelta(microseconds=1)

_DATE_RE = re.compile(
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?"
)


@lru_cache(maxsize=65536)
def normalize_string(value: str) -> str:
    """Search form of a string: compatibility-decomposed, accents removed, case-folded.

    `Zoë` → `zoe`, full-width `ＡＢＣ` → `abc`; CJK characters are kept as they are
    (FHIR R4B search §3.1.1.5.5: matching ignores case and accents). Pure, so cached
    (index extraction meets the same displays and names over and over).
    """
    if value.isascii():  # NFKD leaves ASCII as it is and it has no combining marks
        return value.casefold()
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.casefold()


def parse_date_range(text: str, tz: tzinfo) -> tuple[datetime, datetime]:
    """The UTC range `[start, end]` (end inclusive, microsecond resolution) a FHIR date,
    dateTime or instant covers at its precision: `2026-09` is the whole of September.

    Values without an offset are read in `tz` (the configured zone, Asia/Shanghai by default).
    Raises: ValueError when `text` is not a FHIR date/dateTime/instant.
    """
    m = _DATE_RE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not a FHIR date or dateTime: {text!r}")
    g = m.groupdict()
    zone: tzinfo = tz
    if g["tz"]:
        zone = _offset_zone(g["tz"])
    year = int(g["y"])
    if g["m"] is None:
        start = datetime(year, 1, 1, tzinfo=zone)
        end = datetime(year + 1, 1, 1, tzinfo=zone) if year < 9999 else MAX_DT
    elif g["d"] is None:
        month = int(g["m"])
        start = datetime(year, month, 1, tzinfo=zone)
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
    elif g["H"] is None:
        start = datetime(year, int(g["m"]), int(g["d"]), tzinfo=zone)
        end = start + timedelta(days=1)
    else:
        fraction = g["f"] or ""
        micro = int((fraction + "000000")[:6]) if fraction else 0
        start = datetime(
            year, int(g["m"]), int(g["d"]), int(g["H"]), int(g["M"]), int(g["S"] or 0), micro, tzinfo=zone
        )
        if g["S"] is None:
            step = timedelta(minutes=1)
        elif fraction:
            step = timedelta(microseconds=max(1, 10 ** (6 - min(len(fraction), 6))))
        else:
            step = timedelta(seconds=1)
        end = start + step
    return start.astimezone(UTC), (end.astimezone(UTC) - _US) if end is not MAX_DT else MAX_DT


@cache
def _offset_zone(text: str) -> tzinfo:
    """`Z` or `+08:00` as a fixed-offset zone (cached: few distinct offsets occur)."""
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=int(text[1:3]), minutes=int(text[4:6])))


def date_value_range(value: object, tz: tzinfo) -> tuple[datetime, datetime] | None:
    """Like `parse_date_range` for a JSON value (str, or a date/datetime object); None if unusable."""
    if isinstance(value, str):
        try:
            return parse_date_range(value, tz)
        except ValueError:
            return None
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=tz)
        return dt.astimezone(UTC), dt.astimezone(UTC) + timedelta(seconds=1) - _US
    if isinstance(value, date):
        return parse_date_range(value.isoformat(), tz)
    return None


def to_decimal(value: object) -> Decimal | None:
    """A JSON number (int, Decimal, float, or numeric str) as Decimal; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float | str):
        try:
            result = Decimal(str(value))
        except InvalidOperation:
            return None
        return result if result.is_finite() else None
    return None


def decimal_range(value: Decimal) -> tuple[Decimal, Decimal]:
    """Implicit range of a decimal by its significant figures: `1.50` → [1.495, 1.505],
    `100` → [99.5, 100.5] (FHIR R4B search §3.1.1.5.3)."""
    exponent = value.as_tuple().exponent
    exp = exponent if isinstance(exponent, int) else 0
    half = Decimal(5).scaleb(exp - 1)
    return value - half, value + half
