"""ACK/NAK building against golden files (HL7 v2.5 §2.9, §2.15.8 MSA, §2.15.5 ERR, Table 0357).

Regenerate after an intended change with `HIE_UPDATE_GOLDEN=1`.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from adapters.hl7v2.ack import AckError, build_ack, encode_ack, read_ack
from adapters.hl7v2.errors import ErrLocation
from adapters.hl7v2.header import Header, read_header

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 10, 1, 8, 0, 5, tzinfo=timezone(timedelta(hours=8)))
UTF8_ADT = (
    "MSH|^~\\&|HIS|QYRMYY^清远市人民医院|QYHIE|QYWJJ|20261001080000+0800||ADT^A04^ADT_A01|C0001|P|2.5\r"
)
GB_ADT = (
    "MSH|^~\\&|HIS|YDRMYY^英德市人民医院|QYHIE|QYWJJ|20261001080000||ADT^A04^ADT_A01|C0002|P|2.4|||AL|NE|CHN|"
    "GB 18030-2000\r"
)

CASES = {
    "aa_original": (UTF8_ADT.encode(), "AA", [], None),
    "ae_location_v25": (
        UTF8_ADT.encode(),
        "AE",
        [AckError("102", "PID-7: 19801345 is not a real date", ErrLocation("PID", 1, 7))],
        None,
    ),
    "ce_gb18030_v24": (
        GB_ADT.encode("gb18030"),
        "CE",
        [AckError("102", "bytes cannot be decoded | 无法解码", ErrLocation("MSH", 1, 18))],
        "gb18030",
    ),
    "ar_no_msh": (
        b"PID|1||X\r",
        "AR",
        [AckError("100", "not an HL7 v2 message: no MSH segment", ErrLocation("MSH", 1))],
        None,
    ),
    "aa_with_warning": (
        UTF8_ADT.encode(),
        "AA",
        [AckError("0", "身份证号 kept but flagged", ErrLocation("PID", 1, 3), "W")],
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_ack(name: str) -> None:
    raw, code, errors, codec = CASES[name]
    header = read_header(raw)
    data = encode_ack(build_ack(header, code, control_id="A42", now=NOW, errors=errors), codec)
    path = GOLDEN / f"ack_{name}.hl7"
    if os.environ.get("HIE_UPDATE_GOLDEN"):
        path.write_bytes(data)
    assert data == path.read_bytes()
    info = read_ack(data)
    assert info.code == code and info.control_id == header.control_id
    assert [e[0] for e in info.errors] == [e.code for e in errors]


def test_ack_is_encoded_like_the_message() -> None:
    header = read_header(GB_ADT.encode("gb18030"))
    text = build_ack(header, "CA", control_id="A1", now=NOW, errors=[AckError("0", "中文说明", None, "W")])
    data = encode_ack(text, "gb18030")
    assert "中文说明".encode("gb18030") in data and data.decode("gb18030") == text
    assert text.split("\r")[0].endswith("|GB 18030-2000")


def test_ack_addresses_the_sender_and_escapes_delimiters() -> None:
    header = Header(
        sending_application="LIS",
        sending_facility="F9",
        control_id="X|1",
        trigger_event="R01",
        version="2.3.1",
        found=True,
    )
    text = build_ack(
        header,
        "AE",
        control_id="A7",
        now=NOW,
        errors=[AckError("101", "OBX-3 ^ missing", ErrLocation("OBX", 2, 3))],
    )
    msh, msa, err = text.rstrip("\r").split("\r")
    assert msh.split("|")[2:6] == ["QYHIE", "QYWJJ", "LIS", "F9"] and "|ACK^R01^ACK|A7|" in msh
    assert msa == "MSA|AE|X\\F\\1"
    assert err.split("|")[1:5] == [
        "OBX^2^3^101&Required field missing&HL70357",
        "OBX^2^3",
        "101^Required field missing^HL70357",
        "E",
    ]
    assert err.endswith("OBX-3 \\S\\ missing")
