"""Synthetic feed generator: determinism, identifiers, charsets, and truth-file consistency."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from adapters.synth import FACILITY_BY_CODE, generate_feed
from ehr_store import InvalidInput
from ehr_store.resident_id import check_character, parse_resident_id

RESIDENTS = 300


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _segments(path: Path, charset: str) -> list[list[str]]:
    text = path.read_bytes().decode(charset)
    lines = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    return [line.split("|") for line in lines if line]


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("feed") / "out"
    generate_feed(out, residents=RESIDENTS, seed=11)
    return out


@pytest.fixture(scope="module")
def truth(feed: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (feed / "truth.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def residents(feed: Path) -> dict[str, dict[str, str]]:
    rows = [json.loads(line) for line in (feed / "residents.jsonl").read_text(encoding="utf-8").splitlines()]
    return {r["key"]: r for r in rows}


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    generate_feed(tmp_path / "a", residents=40, seed=5)
    generate_feed(tmp_path / "b", residents=40, seed=5)
    generate_feed(tmp_path / "c", residents=40, seed=6)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_refuses_non_empty_outdir_and_zero_residents(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="not empty"):
        generate_feed(tmp_path / "x", residents=5)
    with pytest.raises(InvalidInput):
        generate_feed(tmp_path / "y", residents=0)
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"


def test_layout_matches_the_shared_sample(feed: Path, truth: list[dict[str, Any]]) -> None:
    assert (feed / "residents.jsonl").is_file() and (feed / "facilities.json").is_file()
    for row in truth:
        assert {"file", "facility", "type"} <= row.keys()
        assert (feed / row["file"]).is_file()
        assert row["file"].startswith(f"feeds/{row['facility']}/")
    files = {p.relative_to(feed).as_posix() for p in (feed / "feeds").rglob("*.hl7")}
    assert files == {row["file"] for row in truth}


def test_residents_have_valid_ids_names_phones(residents: dict[str, dict[str, str]]) -> None:
    assert len(residents) == RESIDENTS
    counties = {r["county"] for r in residents.values()}
    assert len(counties) >= 6
    for r in residents.values():
        rid = parse_resident_id(r["resident_id"])
        assert rid.valid, r
        assert rid.area_code == r["county"]
        assert rid.birth_date is not None and rid.birth_date.isoformat() == r["birth"]
        assert rid.sex == ("male" if r["sex"] == "M" else "female")
        assert 1 <= len(r["given"]) <= 2 and 1 <= len(r["family"]) <= 2
        assert 13800000000 <= int(r["phone"]) <= 13800009999


def test_ids_as_sent_are_valid_exactly_where_meant(truth: list[dict[str, Any]],
                                                   residents: dict[str, dict[str, str]]) -> None:
    forms: set[str] = set()
    for row in truth:
        if not row.get("id_sent"):
            continue
        sent, real = row["id_value"], residents[row["person"]]["resident_id"]
        quirks = row.get("quirks", [])
        parsed = parse_resident_id(sent)
        if "id_invalid" in quirks:
            forms.add("invalid")
            assert not parsed.valid
            assert check_character(sent[:17]) != sent[17]
        else:
            assert parsed.valid and parsed.value == real
            forms.add("15" if len(sent) == 15 else "lower_x" if sent.endswith("x") else "18")
    assert forms >= {"18", "15", "invalid"}


def test_each_message_decodes_in_its_facility_charset(feed: Path, truth: list[dict[str, Any]]) -> None:
    terminators = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n"}
    for row in truth:
        if row["facility"] == "BAD":
            continue
        facility = FACILITY_BY_CODE[row["facility"]]
        data = (feed / row["file"]).read_bytes()
        segs = _segments(feed / row["file"], facility.charset)
        assert segs[0][0] == "MSH"
        msh18 = segs[0][17] if len(segs[0]) > 17 else ""  # MSH-n is index n - 1 (MSH-1 is the separator)
        assert msh18 == facility.msh18
        assert (segs[0][14], segs[0][15]) == facility.ack_modes  # MSH-15, MSH-16
        assert data.endswith(terminators[facility.terminator])
        if facility.terminator == "CR":
            assert b"\n" not in data
        if facility.charset == "gb18030":
            with pytest.raises(UnicodeDecodeError):
                data.decode("utf-8")


def _field(segs: list[list[str]], name: str, n: int) -> list[str]:
    return [s[n] if len(s) > n else "" for s in segs if s[0] == name]


def test_truth_agrees_with_message_content(feed: Path, truth: list[dict[str, Any]]) -> None:
    for row in truth:
        if row["facility"] == "BAD":
            continue
        segs = _segments(feed / row["file"], row["charset"])
        msh = segs[0]
        assert msh[8].rsplit("^", 1)[0].startswith(row["type"])
        assert msh[9] == row["control_id"]
        pid3 = _field(segs, "PID", 3)[0].split("~")
        assert pid3[0] == f"{row['mrn']}^^^{row['facility']}^MR"
        pid19 = _field(segs, "PID", 19)[0]
        if row["id_sent"]:
            where = pid3[1].split("^")[0] if row["id_field"] == "PID-3" else pid19
            assert where == row["id_value"]
        else:
            assert len(pid3) == 1 and pid19 == ""
        obx = [s for s in segs if s[0] == "OBX"]
        if row["type"] == "ORU^R01":
            assert [(o[3].split("^")[0], o[5], o[6], o[8]) for o in obx] == [
                (x["code"], x["value"], x["unit"], x["flag"]) for x in row["observations"]]
        if row["type"] == "ADT^A08":
            assert _field(segs, "PID", 13)[0].endswith(row["phone"])
        if row["type"] == "ADT^A40":
            assert _field(segs, "MRG", 1)[0].split("^")[0] == row["merged"]
        if "diag" in row:
            assert _field(segs, "DG1", 3)[0].split("^")[0] == row["diag"]
        if "accession" in row:
            assert _field(segs, "OBR", 18)[0] == row["accession"]


def test_abnormal_flags_follow_reference_ranges(feed: Path, truth: list[dict[str, Any]]) -> None:
    flags = set()
    for row in truth:
        for segs in ([_segments(feed / row["file"], row["charset"])] if row["type"] == "ORU^R01" else []):
            for obx in (s for s in segs if s[0] == "OBX"):
                low, high = (float(x) for x in obx[7].split("-"))
                value = float(obx[5])
                expected = "H" if value > high else "L" if value < low else "N"
                assert obx[8] == expected
                flags.add(expected)
    assert flags == {"H", "L", "N"}


def test_mrns_identify_one_person_and_merges_follow_their_duplicate(truth: list[dict[str, Any]]) -> None:
    owner: dict[tuple[str, str], str] = {}
    control_ids: set[tuple[str, str]] = set()
    first_seen: dict[tuple[str, str], str] = {}
    for row in sorted((r for r in truth if r["facility"] != "BAD"), key=lambda r: r["file"]):
        key = (row["facility"], row["mrn"])
        assert owner.setdefault(key, row["person"]) == row["person"]
        assert (row["facility"], row["control_id"]) not in control_ids
        control_ids.add((row["facility"], row["control_id"]))
        first_seen.setdefault(key, row["file"])
        if row["type"] == "ADT^A40":
            dup = (row["facility"], row["merged"])
            assert owner[dup] == row["person"] and first_seen[dup] < row["file"]
    types = {r["type"] for r in truth}
    assert {"ADT^A01", "ADT^A04", "ADT^A08", "ADT^A40", "ORU^R01", "ORM^O01", "VXU^V04", "MDM^T02",
            "SIU^S12", "DFT^P03", "malformed"} <= types
    assert any(r.get("notifiable") for r in truth)


def test_bad_examples_say_what_should_happen(feed: Path, truth: list[dict[str, Any]]) -> None:
    bad = [r for r in truth if r["facility"] == "BAD"]
    assert len(bad) == 8
    assert sum(r["expect"].startswith("accept") for r in bad) == 1
    assert not (feed / "feeds/BAD/bad01.hl7").read_bytes().startswith(b"MSH")
    with pytest.raises(UnicodeDecodeError):
        (feed / "feeds/BAD/bad06.hl7").read_bytes().decode("gb18030")
