"""ehr_store.jsonio: exact decimals in and out (FHIR R4B json §2.6.2)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ehr_store import InvalidInput, json_dumps, json_loads, json_loads_resource
from ehr_store.jsonio import MAX_DEPTH, check_depth


@pytest.mark.parametrize(
    "text", ["1.50", "0.10", "-3.000", "1E+2", "1.0e-7", "12345678901234567890.123456789"]
)
def test_decimals_round_trip_as_written(text: str) -> None:
    doc = json_loads(f'{{"value":{text}}}')
    assert isinstance(doc["value"], Decimal)
    assert json_dumps(doc) == f'{{"value":{Decimal(text)}}}'.encode()
    assert json_dumps(json_loads(b'{"v":1.50}')) == b'{"v":1.50}'


def test_integers_stay_integers_and_utf8_is_kept() -> None:
    doc = json_loads('{"n": 3, "name": "张三", "ok": true, "none": null}')
    assert doc == {"n": 3, "name": "张三", "ok": True, "none": None}
    assert isinstance(doc["n"], int)
    assert json_dumps(doc) == '{"n":3,"name":"张三","ok":true,"none":null}'.encode()


def test_bom_and_bytes_accepted() -> None:
    assert json_loads("\ufeff{\"a\":1}".encode()) == {"a": 1}


@pytest.mark.parametrize("bad", [b"{", b"\xff\xfe", b"[1,]", "nope"])
def test_bad_json_is_invalid_input(bad: bytes | str) -> None:
    with pytest.raises(InvalidInput):
        json_loads(bad)


def test_loads_resource_requires_resource_type() -> None:
    assert json_loads_resource(b'{"resourceType":"Patient"}')["resourceType"] == "Patient"
    for bad in (b"[]", b'{"id":"x"}', b'{"resourceType":3}'):
        with pytest.raises(InvalidInput):
            json_loads_resource(bad)


def test_non_finite_decimal_refused() -> None:
    with pytest.raises(TypeError):
        json_dumps({"v": Decimal("NaN")})


@given(st.integers(-10**12, 10**12), st.integers(1, 8))
def test_any_decimal_with_a_fraction_round_trips_exactly(digits: int, places: int) -> None:
    value = Decimal(digits).scaleb(-places)
    again = json_loads(json_dumps({"v": value}))["v"]
    assert isinstance(again, Decimal) and str(again) == str(value)


def _nested_text(levels: int) -> str:
    """A Patient whose extension is nested `levels` deep (2 JSON levels each)."""
    ext = '{"url":"http://example.org/x",'
    return (
        '{"resourceType":"Patient","extension":['
        + (ext + '"extension":[') * levels
        + ext + '"valueString":"x"}'
        + "]}" * levels
        + "]}"
    )


@pytest.mark.parametrize("levels", [50, 200, 500, 1000, 100_000])
def test_deep_nesting_is_invalid_input_not_recursion_error(levels: int) -> None:
    with pytest.raises(InvalidInput, match="nested too deeply"):
        json_loads(_nested_text(levels))
    with pytest.raises(InvalidInput, match="nested too deeply"):
        json_loads_resource(_nested_text(levels).encode())


def test_depth_limit_counts_objects_and_arrays() -> None:
    assert json_loads("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    assert json_loads_resource(_nested_text(48))["extension"]  # 98 levels
    with pytest.raises(InvalidInput, match="nested too deeply"):
        json_loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(InvalidInput, match="nested too deeply"):
        check_depth({"a": deep})
    check_depth({"a": [[{"b": 1}]] * 1000})  # wide is fine
