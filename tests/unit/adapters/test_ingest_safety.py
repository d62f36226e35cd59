"""Ingestion safety: a reused MSH-10 with other content is processed (not dropped), replay only
runs the error queue, superseded failures leave it, one message per frame, MSH-10 and
MSH-15/16 checks, and the no-acknowledgement modes still answer (HL7 v2.5 §2.9)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.hl7v2.ack import read_ack
from adapters.ingest import IngestService
from ehr_store import Conflict, MemoryStore, SqlStore, Store, StoreSettings

sys.path.insert(0, str(Path(__file__).parent))
import hl7_messages as M


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        s: Store = MemoryStore(StoreSettings(database_url="memory://"))
    else:
        s = SqlStore(StoreSettings(database_url=request.getfixturevalue("sqlite_url")))
    try:
        yield s
    finally:
        s.close()


def adt(cid: str, phone: str = "13800001234", family: str = "林") -> bytes:
    text = M.ADT_A01_FULL.replace("|M1001|", f"|{cid}|").replace("13800001234", phone)
    return text.replace("林^小红", f"{family}^小红").encode()


def statuses(store: Store) -> dict[int, str]:
    with store.unit_of_work() as uow:
        return {m.id: m.status for m in uow.messages.list(limit=1000)}


def test_same_control_id_other_content_is_processed_and_logged(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    svc = IngestService(store)
    first = svc.ingest(adt("R1"), transport="test")
    # a resend of the same bytes (other framing/terminators) replays the stored ACK
    again = svc.ingest(b"\x0b" + adt("R1") + b"\n", transport="test")
    assert again.duplicate and again.ack == first.ack and again.message_id == first.message_id
    with caplog.at_level(logging.WARNING, logger="adapters.ingest"):
        other = svc.ingest(adt("R1", phone="13800009999"), transport="test")
    assert not other.duplicate and other.outcome == "AA" and other.message_id != first.message_id
    assert any("reused" in r.getMessage() for r in caplog.records)
    assert not any("R1" in r.getMessage() for r in caplog.records)  # no identifiers in the log
    assert list(statuses(store).values()) == ["processed", "processed"]


def test_replay_refuses_processed_messages_unless_forced(store: Store) -> None:
    svc = IngestService(store)
    done = svc.ingest(adt("P1"), transport="test")
    with pytest.raises(Conflict, match="not in the error queue"):
        svc.replay(done.message_id or 0)
    assert svc.replay(done.message_id or 0, force=True).outcome == "AA"


def test_failed_message_is_superseded_by_a_successful_resend(store: Store) -> None:
    svc = IngestService(store)
    bad = svc.ingest(adt("S1").replace(b"|2.5|", b"|9.9|"), transport="test")
    assert bad.outcome == "AR" and [m.id for m in svc.error_queue()] == [bad.message_id]
    fixed = svc.ingest(adt("S1"), transport="test")
    assert fixed.outcome == "AA" and not fixed.duplicate
    assert svc.error_queue() == []
    assert svc.replay_all() == []
    with store.unit_of_work() as uow:
        row = uow.messages.get(bad.message_id or 0)
    assert row.error is not None and row.error.startswith(f"superseded by message {fixed.message_id}")


def test_an_unfinished_copy_of_a_processed_message_is_not_an_error_queue_item(store: Store) -> None:
    """An MLLP process died holding a copy (archived, never answered) of a message another
    process had answered: the copy is not shown as failed; another message's is."""
    answering, crashed = IngestService(store), IngestService(store)
    (first,) = answering.accept_many([adt("C1")], transport="test")
    (held,) = crashed.accept_many([adt("C1")], transport="test")  # the copy, archived after it
    (stray,) = crashed.accept_many([adt("C2")], transport="test")  # nobody processed this one
    assert read_ack(answering.process_many([first])[0][-1]).code == "AA"  # then `crashed` dies
    assert first.message_id is not None and held.message_id is not None
    assert held.message_id > first.message_id
    assert [m.id for m in answering.error_queue()] == [stray.message_id]
    later = answering.ingest(adt("C1"), transport="test")  # a resend now: the stored ACK
    assert later.duplicate and later.message_id == first.message_id


def test_two_messages_in_one_frame_are_rejected_not_half_processed(store: Store) -> None:
    svc = IngestService(store)
    result = svc.ingest(adt("F1") + adt("F2"), transport="test")
    ack = read_ack(result.ack)
    assert ack.code == "AR" and "more than one message" in result.ack.decode()
    assert list(statuses(store).values()) == ["rejected"]
    batch = b"FHS|^~\\&|HIS\rBHS|^~\\&|HIS\r" + adt("F3") + b"BTS|1\rFTS|1\r"
    assert read_ack(svc.ingest(batch, transport="test").ack).code in {"AR", "CR"}


def test_missing_control_id_and_bad_ack_types(store: Store) -> None:
    svc = IngestService(store)
    no_cid = svc.ingest(adt(""), transport="test").ack.decode()
    assert "|AE|" in no_cid and "MSH-10 (message control ID) is required" in no_cid
    assert "MSH^1^10" in no_cid and "Provenance" not in no_cid
    text = adt("T1").decode().split("\r")
    fields = text[0].split("|")
    fields[14] = "XX"
    text[0] = "|".join(fields)
    bad = svc.ingest("\r".join(text).encode(), transport="test").ack.decode()
    assert "103" in bad and "MSH-15" in bad


@pytest.mark.parametrize("modes", [("NE", "NE"), ("ER", "ER")])
def test_no_ack_modes_get_an_original_mode_ack(store: Store, modes: tuple[str, str]) -> None:
    svc = IngestService(store)
    text = adt(f"N{modes[0]}").decode().split("\r")
    fields = text[0].split("|")
    fields[14], fields[15] = modes
    text[0] = "|".join(fields)
    result = svc.ingest("\r".join(text).encode(), transport="test")
    assert [read_ack(f).code for f in result.frames] == ["AA"]


def test_a_resend_of_an_earlier_message_after_a_reused_control_id_is_a_duplicate(store: Store) -> None:
    """A, then B reusing A's MSH-10 with other content (processed as new), then A again: A is
    a resend of the first message and gets its ACK; nothing is written over B's data."""
    svc = IngestService(store)
    first = svc.ingest(adt("D1", phone="13911112222"), transport="test")
    second = svc.ingest(adt("D1", phone="13933334444"), transport="test")
    assert not second.duplicate and second.message_id != first.message_id
    again = svc.ingest(adt("D1", phone="13911112222"), transport="test")
    assert again.duplicate and again.message_id == first.message_id and again.ack == first.ack
    with store.unit_of_work() as uow:
        patients = uow.resources.search("Patient", [("_count", "100")]).matches
        phones = [t["value"] for p in patients for t in p.as_dict().get("telecom", [])]
    assert "13933334444" in phones and "13911112222" not in phones
    assert len(statuses(store)) == 2  # the resend is not archived again


def test_a_truncated_oversized_frame_is_never_replayed(store: Store) -> None:
    svc = IngestService(store)
    head = adt("BIG1")[:400]
    nak = svc.oversized_nak(head, 20_000_000, 10_000_000)
    assert read_ack(nak).code == "AR" and b"104" in nak
    [queued] = svc.error_queue()
    with pytest.raises(Conflict, match="over the size limit"):
        svc.replay(queued.id, force=True)
    assert svc.replay_all() == []
    with store.unit_of_work() as uow:
        assert uow.resources.search("Patient", []).matches == []  # nothing mapped from the head
    again = svc.oversized_nak(head, 20_000_000, 10_000_000)  # the sender tries again: still AR
    assert read_ack(again).code == "AR"


@pytest.mark.parametrize("msh2", ["ABCD", "^^\\\\&", "^~\\\\", "^~ &"])
def test_unusable_encoding_characters_are_rejected_at_msh_2(store: Store, msh2: str) -> None:
    """MSH|ABCD|... must not be read with A as the component separator: AR 102 at MSH-2, the
    ACK written with the standard characters and addressed to the sender."""
    raw = adt("E1").replace(b"MSH|^~\\&|", b"MSH|" + msh2.encode() + b"|", 1)
    result = IngestService(store).ingest(raw, transport="test")
    text = result.ack.decode()
    ack = read_ack(result.ack)
    assert ack.code == "AR" and [code for code, _t in ack.errors] == ["102"]
    assert text.startswith("MSH|^~\\&|") and "MSH^1^2" in text and "MSH-1/MSH-2" in text
    assert "MSA|AR|E1" in text  # MSA-2: the control id, read with the standard characters
    assert list(statuses(store).values()) == ["rejected"]
