"""Contract: the HL7 v2 message archive (duplicates by MSH-3/MSH-4/MSH-10, error queue)."""

from __future__ import annotations

import pytest

from ehr_store import IncomingMessage, MessageOutcome, NotFound, Store

RAW = "MSH|^~\\&|HIS|清远人民医院|HIE|QY|20240301080000||ADT^A01|C001|P|2.5|||||CHN|UNICODE UTF-8\r".encode()


def _add(store: Store, control_id: str = "C001", raw: bytes = RAW) -> int:
    with store.unit_of_work() as uow:
        message = uow.messages.add(raw, transport="mllp", peer="127.0.0.1:5000", sending_application="HIS",
                                   sending_facility="清远人民医院", control_id=control_id,
                                   message_type="ADT^A01", charset=None)
        uow.commit()
    assert message.status == "received" and message.attempts == 1 and message.raw == raw
    return message.id


def test_add_get_finish(store: Store) -> None:
    message_id = _add(store)
    with store.unit_of_work() as uow:
        assert uow.messages.find_processed("HIS", "清远人民医院", "C001") is None
        uow.messages.finish(message_id, status="processed", ack=b"MSH|...\rMSA|AA|C001\r", ack_code="AA",
                            resources=["Patient/p1", "Encounter/e1"], charset="UTF-8")
        uow.commit()
    with store.unit_of_work() as uow:
        got = uow.messages.get(message_id)
        duplicate = uow.messages.find_processed("HIS", "清远人民医院", "C001")
        other_sender = uow.messages.find_processed("LIS", "清远人民医院", "C001")
    assert got.status == "processed" and got.ack_code == "AA" and got.charset == "UTF-8"
    assert got.resources == ("Patient/p1", "Encounter/e1")
    assert got.raw == RAW and got.received_at.tzinfo is not None
    assert duplicate is not None and duplicate.id == message_id and duplicate.ack == got.ack
    assert other_sender is None


def test_unknown_message(store: Store) -> None:
    with store.unit_of_work() as uow:
        with pytest.raises(NotFound):
            uow.messages.get(424242)
        with pytest.raises(NotFound):
            uow.messages.finish(424242, status="error", ack=b"", ack_code="AE")


def test_list_by_status_and_retry_attempts(store: Store) -> None:
    ids = [_add(store, control_id=f"C{n}") for n in range(4)]
    with store.unit_of_work() as uow:
        uow.messages.finish(ids[0], status="processed", ack=b"AA", ack_code="AA")
        uow.messages.finish(ids[1], status="error", ack=b"AE", ack_code="AE", error="PID-3 missing")
        uow.messages.finish(ids[2], status="rejected", ack=b"AR", ack_code="AR", error="unsupported type")
        uow.commit()
    with store.unit_of_work() as uow:
        everything = uow.messages.list()
        errors = uow.messages.list(status=["error", "rejected"])
        paged = uow.messages.list(limit=2, offset=1)
        # reprocessing the error-queue message counts a second attempt
        uow.messages.finish(ids[1], status="processed", ack=b"AA", ack_code="AA")
        uow.commit()
    assert [m.id for m in everything] == sorted(ids, reverse=True)
    assert {m.id for m in errors} == {ids[1], ids[2]}
    assert [m.id for m in paged] == [ids[2], ids[1]]
    with store.unit_of_work() as uow:
        retried = uow.messages.get(ids[1])
        assert uow.messages.list(status=["received"])[0].id == ids[3]
    assert retried.status == "processed" and retried.attempts == 2 and retried.error is None


def test_finish_many(store: Store) -> None:
    first, second = _add(store, "M1"), _add(store, "M2")
    with store.unit_of_work() as uow:
        uow.messages.finish_many([
            MessageOutcome(first, "processed", b"MSA|AA|M1\r", "AA", resources=["Patient/p1"],
                           charset="GB18030"),
            MessageOutcome(second, "processed", b"MSA|AA|M2\r", "AA"),
        ])
        uow.commit()
    with store.unit_of_work() as uow:
        one, two = uow.messages.get(first), uow.messages.get(second)
        assert uow.messages.find_processed("HIS", "清远人民医院", "M2") == two
        with pytest.raises(NotFound):
            uow.messages.finish_many([MessageOutcome(424242, "error", b"", "AE")])
    assert (one.status, one.ack, one.resources) == ("processed", b"MSA|AA|M1\r", ("Patient/p1",))
    assert one.charset == "GB18030"
    assert (two.status, two.ack_code, two.resources, two.charset) == ("processed", "AA", (), None)
    assert two.attempts == 1


def test_add_many_and_find_processed_many(store: Store) -> None:
    def incoming(control_id: str, app: str | None = "HIS") -> IncomingMessage:
        return IncomingMessage(RAW, "mllp", None, app, "清远人民医院", control_id, "ADT^A01", None)

    with store.unit_of_work() as uow:
        added = uow.messages.add_many([incoming("K1"), incoming("K2"), incoming("K1", app=None)])
        uow.commit()
    assert [m.control_id for m in added] == ["K1", "K2", "K1"] and len({m.id for m in added}) == 3
    with store.unit_of_work() as uow:
        assert [uow.messages.get(m.id).sending_application for m in added] == ["HIS", "HIS", None]
        for m in (added[0], added[2]):
            uow.messages.finish(m.id, status="processed", ack=b"MSA|AA|K1\r", ack_code="AA")
        uow.commit()
    with store.unit_of_work() as uow:
        again = uow.messages.add_many([incoming("K1")])[0]
        uow.messages.finish(again.id, status="error", ack=b"MSA|AE|K1\r", ack_code="AE")
        uow.commit()
    keys: list[tuple[str | None, str | None, str]] = [
        ("HIS", "清远人民医院", "K1"), ("HIS", "清远人民医院", "K2"), (None, "清远人民医院", "K1"),
        ("LIS", "清远人民医院", "K1"), ("HIS", "清远人民医院", "K1"),
    ]
    with store.unit_of_work() as uow:
        found = uow.messages.find_processed_many(keys)
        assert uow.messages.add_many([]) == []
    assert set(found) == {("HIS", "清远人民医院", "K1"), (None, "清远人民医院", "K1")}
    assert found[("HIS", "清远人民医院", "K1")].id == again.id  # the newest answered one
    assert found[(None, "清远人民医院", "K1")].id == added[2].id
