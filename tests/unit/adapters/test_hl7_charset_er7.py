"""Charset before splitting (MSH-18), the ER7 splitter, escapes and explicit nulls."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.hl7v2.charset import decode_message, header_text, python_codec
from adapters.hl7v2.er7 import Encoding, split_message, unescape
from adapters.hl7v2.errors import Hl7ContentError
from adapters.hl7v2.header import read_header

# 亅 is 0x81 0x7C in GBK/GB18030: its trail byte is the field separator "|".
TRAIL_PIPE = "亅"
assert TRAIL_PIPE.encode("gb18030")[1:] == b"|"


def _msg(name: str, charset: str, term: str = "\r") -> str:
    return (
        term.join(
            [
                f"MSH|^~\\&|HIS|F1^{name}卫生院|QYHIE|QYWJJ|20260901082300+0800||ADT^A04^ADT_A01|C1|P|2.4|||||CHN|{charset}",
                f"PID|1||M1^^^F1^MR||{name}^{TRAIL_PIPE}明||19800101|M",
                "PV1|1|O",
            ]
        )
        + term
    )


def test_gbk_trail_byte_equal_to_pipe_stays_inside_its_character() -> None:
    raw = _msg("亅", "GB 18030-2000").encode("gb18030")
    assert raw.count(b"|") > _msg("亅", "GB 18030-2000").count("|")  # naive byte split would be wrong
    header = read_header(raw)
    assert header.charset == "GB 18030-2000" and header.control_id == "C1"
    decoded = decode_message(raw, header.charset)
    pid = split_message(decoded.text).first("PID")
    assert pid is not None and pid.get(5, 1) == "亅" and pid.get(5, 2) == f"{TRAIL_PIPE}明"
    assert pid.get(7) == "19800101"
    assert decoded.codec == "gb18030" and decoded.note is None


@pytest.mark.parametrize(
    "name,codec",
    [
        ("UNICODE UTF-8", "utf-8"),
        ("GBK", "gb18030"),
        ("GB2312", "gb18030"),
        ("GB 18030-2000", "gb18030"),
        ("ASCII", "ascii"),
        ("", None),
        ("EBCDIC", None),
    ],
)
def test_msh18_names(name: str, codec: str | None) -> None:
    assert python_codec(name) == codec


def test_empty_msh18_uses_the_sender_default_and_says_so() -> None:
    raw = _msg("张", "").encode("gb18030")
    decoded = decode_message(raw, None, "GB18030")
    assert decoded.codec == "gb18030" and "sending facility default" in (decoded.note or "")


def test_wrong_msh18_falls_back_to_the_sender_default_and_records_it() -> None:
    raw = _msg("张", "UNICODE UTF-8").encode("gb18030")
    decoded = decode_message(raw, "UNICODE UTF-8", "gb18030")
    assert decoded.codec == "gb18030" and "not valid" in (decoded.note or "")
    with pytest.raises(Hl7ContentError) as err:
        decode_message(raw, "UNICODE UTF-8", None)
    assert err.value.code == "102" and err.value.location is not None and err.value.location.field == 18


def test_header_of_a_gb18030_message_is_read_without_guessing_the_body() -> None:
    raw = _msg("黄", "GB 18030-2000").encode("gb18030")
    assert header_text(raw).startswith("MSH|^~\\&|HIS|F1^黄卫生院|")


@pytest.mark.parametrize("term", ["\r", "\n", "\r\n"])
def test_all_segment_terminators(term: str) -> None:
    msg = split_message(_msg("李", "UNICODE UTF-8", term))
    assert [s.name for s in msg] == ["MSH", "PID", "PV1"]
    assert msg.msh.get(9, 2) == "A04"


def test_five_encoding_characters_and_bom() -> None:
    text = "\ufeffMSH|^~\\&#|A|B|C|D|20260101||ADT^A01|1|P|2.7\rPID|1||X\\P\\1\r"
    msg = split_message(text)
    assert msg.enc.truncation == "#"
    pid = msg.first("PID")
    assert pid is not None and pid.get(3) == "X#1"


def test_escapes_are_decoded_in_values_only() -> None:
    enc = Encoding()
    assert unescape(r"a\F\b\S\c\T\d\R\e\E\f", enc) == "a|b^c&d~e\\f"
    assert unescape(r"line1\.br\line2", enc) == "line1\nline2"
    assert unescape("\\XE4B8AD\\", enc) == "中"
    assert unescape("\\H\\bold\\N\\", enc) == "bold"
    assert unescape(r"open\Fend", enc) == r"open\Fend"
    seg = split_message("MSH|^~\\&|A|B\rOBX|1|ST|C^x\\S\\y||a\\F\\b~c\r").first("OBX")
    assert seg is not None and seg.get(3, 2) == "x^y" and seg.values(5) == ["a|b", "c"]


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_escape_round_trip(value: str) -> None:
    enc = Encoding()
    escaped = (
        value.replace("\\", "\\E\\")
        .replace("|", "\\F\\")
        .replace("^", "\\S\\")
        .replace("&", "\\T\\")
        .replace("~", "\\R\\")
    )
    assert unescape(escaped, enc) == value


def test_explicit_null_is_distinct_from_empty() -> None:
    pid = split_message('MSH|^~\\&|A|B\rPID|1||X||""|||\r').first("PID")
    assert pid is not None
    assert pid.is_null(5) and pid.get(5) == '""' and pid.values(5) == []
    assert not pid.is_null(7) and pid.get(7) == ""


def test_z_segments_are_kept_and_bad_segment_ids_rejected() -> None:
    msg = split_message("MSH|^~\\&|A|B\rZPI|1|x\rPID|1\r")
    assert [s.name for s in msg] == ["MSH", "ZPI", "PID"]
    with pytest.raises(Hl7ContentError) as err:
        split_message("MSH|^~\\&|A|B\rPV|1\r")
    assert err.value.code == "100" and err.value.location is not None and err.value.location.sequence == 2
    with pytest.raises(Hl7ContentError):
        split_message("PID|1\r")
    with pytest.raises(Hl7ContentError):
        split_message("MSH|^~|A\r")


def test_header_of_garbage_is_empty_not_an_error() -> None:
    assert read_header(b"\xff\xfe garbage").found is False
    assert read_header(b"").message_code is None
