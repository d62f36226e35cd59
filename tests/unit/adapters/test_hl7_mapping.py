"""Mapping golden tests (HL7 v2-to-FHIR IG) on sample-feed and constructed messages; every
mapped resource validates against FHIR R4B. Regenerate with `HIE_UPDATE_GOLDEN=1`."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.hl7v2.charset import decode_message
from adapters.hl7v2.er7 import split_message
from adapters.hl7v2.errors import Hl7ContentError, Hl7Error, Hl7Rejection
from adapters.hl7v2.header import read_header
from adapters.hl7v2.mapping import Mapped, MappingContext, load_code_tables, map_message
from ehr_store import validate_resource

sys.path.insert(0, str(Path(__file__).parent))
import hl7_messages as M

GOLDEN = Path(__file__).parent / "golden"
RECEIVED = datetime(2026, 10, 2, 1, 30, tzinfo=UTC)
SAMPLES = [
    "QYRMYY/00001",
    "LJKWSY/00027",
    "JTWSY/00002",
    "QYRMYY/00007",
    "TTWSY/00003",
    "TTWSY/00139",
    "SJWSY/00037",
    "YSXRMYY/00023",
    "BAD/bad05",
]
CONSTRUCTED = {
    "adt_a01_full": M.ADT_A01_FULL,
    "oru_value_types": M.ORU_VALUE_TYPES,
    "oml_o21": M.OML_O21,
    "mdm_t02": M.MDM_T02,
    "siu_s12": M.SIU_S12,
    "siu_s15": M.SIU_S15,
    "dft_p03": M.DFT_P03,
}


def map_raw(raw: bytes, offset: str | None = "+08:00") -> Mapped:
    header = read_header(raw)
    message = split_message(decode_message(raw, header.charset).text)
    ctx = MappingContext(
        message,
        header.sending_facility or "",
        header.control_id or "",
        RECEIVED,
        offset,
        None,
        load_code_tables(),
    )
    return map_message(ctx)


def resources(mapped: Mapped) -> list[dict[str, Any]]:
    return [json.loads(json.dumps(r.resource, default=str, ensure_ascii=False)) for r in mapped.resources]


def check_golden(name: str, mapped: Mapped) -> None:
    got = resources(mapped)
    for item in mapped.resources:
        validate_resource(item.resource)
    path = GOLDEN / f"map_{name}.json"
    if os.environ.get("HIE_UPDATE_GOLDEN"):
        path.write_text(json.dumps(got, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    assert got == json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_messages_map_to_golden_resources(name: str, sample_feed: Path) -> None:
    check_golden(name.replace("/", "_"), map_raw((sample_feed / "feeds" / f"{name}.hl7").read_bytes()))


@pytest.mark.parametrize("name", sorted(CONSTRUCTED))
def test_constructed_messages_map_to_golden_resources(name: str) -> None:
    check_golden(name, map_raw(CONSTRUCTED[name].encode()))


def test_ids_are_deterministic_and_an_update_targets_the_same_resources() -> None:
    a = {r.key for r in map_raw(M.ADT_A01_FULL.encode()).resources}
    b = {r.key for r in map_raw(M.ADT_A01_FULL.replace("|M1001|", "|M2001|").encode()).resources}
    assert a - b == {("Provenance", "msg-QYRMYY-HIS-M1001")}
    assert ("Patient", "QYRMYY-QY0200001") in a


def test_chinese_name_resident_id_and_address() -> None:
    res = {r.key[0]: r.resource for r in map_raw(M.ADT_A01_FULL.encode()).resources}
    patient = res["Patient"]
    assert patient["name"][0] == {"use": "official", "text": "林小红", "family": "林", "given": ["小红"]}
    rid = [i for i in patient["identifier"] if i["system"] == "urn:oid:2.16.156.10011.1.3"]
    assert rid and rid[0]["value"] == "441802199001011239"
    assert patient["address"][0]["district"] == "441802"
    assert {"system": "email", "value": "lin@example.cn"} in patient["telecom"]
    assert res["Encounter"]["class"]["code"] == "IMP"
    assert res["AllergyIntolerance"]["criticality"] == "high"


def test_invalid_resident_id_is_kept_flagged_and_warned() -> None:
    raw = M.ADT_A01_FULL.replace("441802199001011239", "441802199001011230").encode()
    mapped = map_raw(raw)
    patient = next(r.resource for r in mapped.resources if r.key[0] == "Patient")
    flagged = [i for i in patient["identifier"] if i["value"] == "441802199001011230"]
    assert flagged[0]["system"] == "urn:qyhie:resident-id:invalid"
    assert "check character" in flagged[0]["extension"][0]["valueString"]
    assert all(i["system"] != "urn:oid:2.16.156.10011.1.3" for i in patient["identifier"])
    assert mapped.warnings and mapped.warnings[0][1] is not None


def test_without_a_configured_offset_local_times_keep_only_the_date(sample_feed: Path) -> None:
    mapped = map_raw((sample_feed / "feeds" / "LJKWSY" / "00027.hl7").read_bytes(), offset=None)
    enc = next(r.resource for r in mapped.resources if r.key[0] == "Encounter")
    assert enc["period"]["start"] == "2026-09-09"


def test_explicit_null_deletes_and_empty_keeps() -> None:
    patient = next(r for r in map_raw(M.ADT_A08_NULL.encode()).resources if r.key[0] == "Patient")
    assert patient.merge and patient.nulled == frozenset({"address"})
    assert "telecom" not in patient.resource and "telecom" not in patient.nulled


@pytest.mark.parametrize(
    "change,kind,code",
    [
        ("ADT^A01^ADT_A01|M1001|P|2.5", Hl7Rejection, "201"),
        ("QRY^A19|M1001|P|2.5", Hl7Rejection, "200"),
        ("ADT^A01^ADT_A01|M1001|P|3.0", Hl7Rejection, "203"),
    ],
)
def test_header_rejections(change: str, kind: type[Hl7Error], code: str) -> None:
    raw = M.ADT_A01_FULL.replace(
        "ADT^A01^ADT_A01|M1001|P|2.5",
        change.replace("A01^ADT_A01|", "A99^X|", 1) if code == "201" else change,
    )
    with pytest.raises(kind) as err:
        map_raw(raw.encode())
    assert err.value.code == code


def test_bad_numeric_value_is_a_located_content_error() -> None:
    raw = M.ORU_VALUE_TYPES.replace("OBX|6|NM|K^钾^L||4.20", "OBX|6|NM|K^钾^L||abc")
    with pytest.raises(Hl7ContentError) as err:
        map_raw(raw.encode())
    assert err.value.code == "102" and err.value.location is not None
    assert (err.value.location.segment, err.value.location.sequence, err.value.location.field) == (
        "OBX",
        6,
        5,
    )
