"""Property tests for the 身份证号 checks used by the EMPI (GB 11643-1999)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ehr_store.resident_id import check_character, is_valid_resident_id, parse_resident_id

AREAS = st.sampled_from(
    [
        "441802",
        "441803",
        "441821",
        "441823",
        "441825",
        "441826",
        "441881",
        "441882",
        "441827",
        "440000",
        "110101",
    ]
)  # 441827 清新县: historic code (2012 → 441803)
DATES = st.dates(
    min_value=__import__("datetime").date(1900, 1, 1), max_value=__import__("datetime").date(2026, 12, 31)
)
SEQ = st.integers(min_value=0, max_value=999)


def build(area: str, born: object, seq: int) -> str:
    first17 = f"{area}{born:%Y%m%d}{seq:03d}"  # type: ignore[str-format]
    return first17 + check_character(first17)


@given(AREAS, DATES, SEQ)
def test_well_formed_numbers_are_valid_and_canonical(area: str, born: object, seq: int) -> None:
    rid = parse_resident_id(build(area, born, seq))
    assert rid.valid
    assert rid.area_code == area
    assert rid.birth_date == born
    assert rid.sex == ("male" if seq % 2 else "female")


@given(AREAS, DATES, SEQ, st.integers(min_value=0, max_value=16), st.integers(min_value=1, max_value=9))
def test_any_single_digit_error_is_caught(area: str, born: object, seq: int, pos: int, delta: int) -> None:
    value = build(area, born, seq)
    wrong = value[:pos] + str((int(value[pos]) + delta) % 10) + value[pos + 1 :]
    assert not is_valid_resident_id(wrong)


@given(AREAS, DATES, SEQ)
def test_lowercase_x_and_spaces_accepted(area: str, born: object, seq: int) -> None:
    value = build(area, born, seq)
    assert parse_resident_id(f"  {value.lower()} ").value == value
    assert is_valid_resident_id(value.lower())


@given(
    AREAS,
    st.dates(
        min_value=__import__("datetime").date(1900, 1, 1), max_value=__import__("datetime").date(1999, 12, 31)
    ),
    SEQ,
)
def test_fifteen_digit_numbers_upgrade_to_eighteen(area: str, born: object, seq: int) -> None:
    legacy = f"{area}{born:%y%m%d}{seq:03d}"  # type: ignore[str-format]
    rid = parse_resident_id(legacy)
    assert rid.valid and len(rid.value) == 18
    assert rid.value == build(area, born, seq)


def test_historic_area_code_441827_accepted() -> None:
    value = build("441827", __import__("datetime").date(1968, 3, 5), 123)
    assert is_valid_resident_id(value)
    assert parse_resident_id(value).area_code == "441827"


def test_impossible_birth_date_rejected() -> None:
    first17 = "44180219730230123"
    assert not is_valid_resident_id(first17 + check_character(first17))
