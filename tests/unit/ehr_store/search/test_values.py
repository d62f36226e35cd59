"""Date ranges by precision, and the prefix semantics on ranges (FHIR R4B search §3.1.1.5.4)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from ehr_store.search.memory_match import date_matches
from ehr_store.search.query import DateValue
from ehr_store.search.values import decimal_range, normalize_string, parse_date_range

SH = ZoneInfo("Asia/Shanghai")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026", utc(2025, 12, 31, 16), utc(2026, 12, 31, 15, 59, 59, 999999)),
        ("2026-09", utc(2026, 8, 31, 16), utc(2026, 9, 30, 15, 59, 59, 999999)),
        ("2026-12", utc(2026, 11, 30, 16), utc(2026, 12, 31, 15, 59, 59, 999999)),
        ("2026-09-15", utc(2026, 9, 14, 16), utc(2026, 9, 15, 15, 59, 59, 999999)),
        ("2026-09-15T08:30", utc(2026, 9, 15, 0, 30), utc(2026, 9, 15, 0, 30, 59, 999999)),
        ("2026-09-15T08:30:05", utc(2026, 9, 15, 0, 30, 5), utc(2026, 9, 15, 0, 30, 5, 999999)),
        ("2026-09-15T08:30:05Z", utc(2026, 9, 15, 8, 30, 5), utc(2026, 9, 15, 8, 30, 5, 999999)),
        (
            "2026-09-15T08:30:05.25+02:00",
            utc(2026, 9, 15, 6, 30, 5, 250000),
            utc(2026, 9, 15, 6, 30, 5, 259999),
        ),
    ],
)
def test_precision_ranges_in_shanghai(text: str, start: datetime, end: datetime) -> None:
    assert parse_date_range(text, SH) == (start, end)


def test_zone_is_configurable() -> None:
    assert parse_date_range("2026-01-01", UTC)[0] == utc(2026, 1, 1)


@pytest.mark.parametrize("bad", ["notadate", "2026-13", "2026-02-30", "26-01-01", "2026-01-01T25:00"])
def test_bad_dates_raise(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_date_range(bad, SH)


def _value(prefix: str, text: str) -> DateValue:
    start, end = parse_date_range(text, SH)
    return DateValue(prefix, start, end)  # type: ignore[arg-type]


# resource ranges (local Shanghai days)
MARCH_1 = parse_date_range("2026-03-01", SH)
MARCH_1_10AM = parse_date_range("2026-03-01T10:00:00", SH)
FEB_20_TO_MARCH_5 = (parse_date_range("2026-02-20", SH)[0], parse_date_range("2026-03-05", SH)[1])


@pytest.mark.parametrize(
    ("resource", "prefix", "value", "expected"),
    [
        (MARCH_1_10AM, "eq", "2026-03-01", True),
        (MARCH_1_10AM, "eq", "2026-03", True),
        (MARCH_1_10AM, "eq", "2026-03-02", False),
        (MARCH_1, "eq", "2026-03-01T10:00", False),  # a day is not inside a minute
        (MARCH_1_10AM, "ne", "2026-03-02", True),
        (MARCH_1_10AM, "ne", "2026-03-01", False),
        (MARCH_1_10AM, "gt", "2026-02-28", True),
        (MARCH_1_10AM, "gt", "2026-03-01", False),
        (MARCH_1_10AM, "lt", "2026-03-02", True),
        (MARCH_1_10AM, "lt", "2026-03-01", False),
        (MARCH_1_10AM, "ge", "2026-03-01", True),
        (MARCH_1_10AM, "ge", "2026-03-02", False),
        (MARCH_1_10AM, "le", "2026-03-01", True),
        (MARCH_1_10AM, "le", "2026-02-28", False),
        (FEB_20_TO_MARCH_5, "gt", "2026-03-01", True),  # overlaps the range above
        (FEB_20_TO_MARCH_5, "lt", "2026-03-01", True),
        (FEB_20_TO_MARCH_5, "eq", "2026-03", False),
        (FEB_20_TO_MARCH_5, "sa", "2026-02-19", True),
        (FEB_20_TO_MARCH_5, "sa", "2026-02-20", False),
        (FEB_20_TO_MARCH_5, "eb", "2026-03-06", True),
        (FEB_20_TO_MARCH_5, "eb", "2026-03-05", False),
        (MARCH_1_10AM, "ap", "2026-03-02", True),
        (MARCH_1_10AM, "ap", "2020-01-01", False),
    ],
)
def test_prefix_semantics_on_ranges(
    resource: tuple[datetime, datetime], prefix: str, value: str, expected: bool
) -> None:
    assert date_matches(resource[0], resource[1], _value(prefix, value)) is expected


def test_decimal_ranges_by_significant_figures() -> None:
    assert decimal_range(Decimal("1.50")) == (Decimal("1.495"), Decimal("1.505"))
    assert decimal_range(Decimal("100")) == (Decimal("99.5"), Decimal("100.5"))
    assert decimal_range(Decimal("1E+2")) == (Decimal("50"), Decimal("150"))


def test_normalize_string() -> None:
    assert normalize_string("Zoë ÅSE") == "zoe ase"
    assert normalize_string("ＡＢＣ１２") == "abc12"
    assert normalize_string("张三") == "张三"
