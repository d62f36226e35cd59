"""Unit tests for each comparator, the features extraction and blocking keys."""

from __future__ import annotations

from ehr_store.empi.blocking import blocking_keys
from ehr_store.empi.compare import (
    compare_address,
    compare_birth_date,
    compare_family,
    compare_given,
    compare_phone,
    compare_sex,
)
from ehr_store.empi.features import Features, extract, normalise_phone, pinyin
from ehr_store.resident_id import RESIDENT_ID_SYSTEM


def f(name: str, **kw: object) -> Features:
    return Features(
        family=name[:1], given=name[1:], family_py=pinyin(name[:1]), given_py=pinyin(name[1:]), **kw
    )  # type: ignore[arg-type]


def test_family_levels() -> None:
    assert compare_family(f("王晓东"), f("王小东")) == "exact"
    assert compare_family(f("张伟"), f("章伟")) == "homophone"
    assert compare_family(f("张伟"), f("李伟")) == "different"
    assert compare_family(Features(), f("张伟")) is None
    assert compare_family(f("黄伟"), f("王伟")) == "different"
    assert compare_family(f("黄伟"), f("王伟"), equivalents=frozenset({("黄", "王")})) == "homophone"


def test_given_levels_homophone_typo_different() -> None:
    assert compare_given(f("王晓东"), f("王晓东")) == "exact"
    assert compare_given(f("王晓东"), f("王小东")) == "homophone"
    assert compare_given(f("江佳丽"), f("江佳梅")) == "similar"
    assert compare_given(f("曹军"), f("曹敏")) == "different"
    assert compare_given(f("曹军"), Features(family="曹")) is None


def test_birth_date_levels() -> None:
    assert compare_birth_date("1973-11-26", "1973-11-26") == "exact"
    assert compare_birth_date("1980-03-08", "1980-08-03") == "transposed"
    assert compare_birth_date("1973-11-26", "1974-11-26") == "year_off"
    assert compare_birth_date("1973-11-26", "1978-11-26") == "year_off"
    assert compare_birth_date("1965-11-09", "1965-11-11") == "same_month"
    assert compare_birth_date("1965-11-09", "1990-01-01") == "different"
    assert compare_birth_date("", "1990-01-01") is None


def test_sex_levels() -> None:
    assert compare_sex("male", "male") == "same"
    assert compare_sex("male", "female") == "different"
    assert compare_sex("unknown", "female") is None


def test_phone_normalised() -> None:
    assert normalise_phone("+86 138-0000-1234") == "13800001234"
    assert normalise_phone("008613800001234") == "13800001234"
    assert normalise_phone("020-8888 1234") == "02088881234"
    assert normalise_phone("12") == ""
    assert compare_phone(("13800001234",), ("13800005678", "13800001234")) == "same"
    assert compare_phone(("13800001234",), ("13800005678",)) == "different"
    assert compare_phone((), ("1",)) is None


def test_address_levels() -> None:
    home = Features(county="441802", town="石角镇", village="东围村")
    assert compare_address(home, Features(county="441802", town="石角镇", village="东围村")) == "village"
    assert compare_address(home, Features(county="441802", town="石角镇", village="西村村")) == "town"
    assert compare_address(home, Features(county="441802", town="源潭镇")) == "county"
    assert compare_address(home, Features(county="441803", town="石角镇")) == "different"
    assert compare_address(home, Features()) is None


def test_extract_from_patient() -> None:
    patient = {
        "resourceType": "Patient",
        "identifier": [
            {"system": RESIDENT_ID_SYSTEM, "value": "44180219360412071x"},
            {"system": RESIDENT_ID_SYSTEM, "value": "441802193604120710"},
        ],
        "name": [{"family": "周", "given": ["燕雨"]}],
        "gender": "male",
        "birthDate": "1936-04-12",
        "telecom": [{"system": "phone", "value": "+86 13889998797"}],
        "address": [{"line": ["大围村", "石角镇"], "city": "清城区", "district": "441802"}],
    }
    feats = extract(patient)
    assert (feats.family, feats.given, feats.given_py) == ("周", "燕雨", "yanyu")
    assert feats.resident_ids == ("44180219360412071X",)
    assert feats.invalid_resident_ids == ("441802193604120710",)
    assert (feats.county, feats.town, feats.village) == ("441802", "石角镇", "大围村")
    assert feats.phones == ("13889998797",)
    assert Features.from_json(feats.to_json()) == feats


def test_blocking_keys_share_homophones() -> None:
    names = (
        "resident_id",
        "phone",
        "family_birth_date",
        "given_birth_date",
        "name_birth_year",
        "family_birth_month_county",
    )
    a = blocking_keys(f("王晓东", birth_date="1990-01-02", county="441802"), names)  # type: ignore[arg-type]
    b = blocking_keys(f("王小东", birth_date="1990-01-02", county="441802"), names)  # type: ignore[arg-type]
    assert a == b
    assert "fb:wang|1990-01-02" in a and "fm:wang|1990-01|441802" in a
    assert blocking_keys(Features(), names) == []  # type: ignore[arg-type]
