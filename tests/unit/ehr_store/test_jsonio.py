"""ehr_store.jsonio: exact decimals in and out (FHIR R4B json §2.6.2)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ehr_store import InvalidInput, json_dumps, json_loads, json_loads_resource


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
