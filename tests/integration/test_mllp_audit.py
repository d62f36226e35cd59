"""MLLP ingestion is audited (issue 6): a real loopback MLLP server with the audit hook of
`hie serve` (`hie_server.auth.ingest_audit`); each sample message gets one AuditEvent, in the
unit of work of its writes, naming the sending facility, the resources written and the message;
a refused and a malformed message get AuditEvents with a failure outcome."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters import IngestService, MllpClient, MllpServer, MllpSettings, read_ack
from ehr_store import Store, json_loads
from hie_server.auth.ingest_audit import ARCHIVE_SYSTEM, FACILITY_SYSTEM, ingest_audit_hook
from hie_server.auth.mllp import mllp_gate
from hie_server.auth.settings import AuthSettings

REPO = Path(__file__).resolve().parents[2]
FEEDS = Path(os.environ.get("HIE_SAMPLES_DIR", REPO / ".." / "shared" / "samples")) / "feed-small" / "feeds"


def samples(facility: str, n: int) -> list[bytes]:
    files = sorted((FEEDS / facility).glob("*.hl7"))[:n]
    assert files, f"sample feed not found under {FEEDS} (set HIE_SAMPLES_DIR)"
    return [f.read_bytes() for f in files]


@pytest.fixture
async def servers(store: Store) -> AsyncIterator[tuple[MllpServer, MllpServer]]:
    """(open server, server refusing plain connections as with an issuer configured)."""
    service = IngestService(store, before_commit=ingest_audit_hook("test-site"))
    strict = AuthSettings(issuer="https://sso.invalid/realms/qingyuan", mllp_plain="refuse")
    open_srv = MllpServer(service, MllpSettings(port=0))
    closed_srv = MllpServer(service, MllpSettings(port=0), gate=mllp_gate(strict))
    await open_srv.start()
    await closed_srv.start()
    try:
        yield open_srv, closed_srv
    finally:
        await open_srv.stop()
        await closed_srv.stop()


def audit_events(store: Store) -> list[dict]:  # type: ignore[type-arg]
    with store.unit_of_work() as uow:
        page = uow.resources.search("AuditEvent", [("_count", "1000")])
    return [json_loads(r.content) for r in page.matches]


def by_message(events: list[dict], message_id: int) -> dict:  # type: ignore[type-arg]
    found = [
        e
        for e in events
        for ent in e.get("entity", [])
        if ent["what"].get("identifier") == {"system": ARCHIVE_SYSTEM, "value": str(message_id)}
    ]
    assert len(found) == 1, f"{len(found)} AuditEvents for message {message_id}"
    return found[0]


def send(port: int, messages: list[bytes]) -> list[bytes]:
    with MllpClient("127.0.0.1", port, timeout=30) as client:
        return [client.send(m)[-1] for m in messages]


async def test_processed_and_refused_messages_are_audited(
    servers: tuple[MllpServer, MllpServer], store: Store
) -> None:
    import asyncio

    open_srv, closed_srv = servers
    sent = samples("QYRMYY", 3) + samples("YDRMYY", 2)
    acks = await asyncio.to_thread(send, open_srv.port, sent)
    assert {read_ack(a).code for a in acks} <= {"AA", "CA"}  # the samples ask for enhanced mode
    refused = samples("LZRMYY", 1)
    [nak] = await asyncio.to_thread(send, closed_srv.port, refused)
    assert read_ack(nak).code == "CR"  # AR in enhanced mode
    bad = b"MSH|^~\\&|HIS|QYRMYY|QYHIE|QYWJJ|20260901082300+0800||ADT^A04^ADT_A01||P|2.5\rPID|1\r"
    [bad_ack] = await asyncio.to_thread(send, open_srv.port, [bad])
    assert read_ack(bad_ack).code in ("AE", "AR")

    events = audit_events(store)
    with store.unit_of_work() as uow:
        archived = {m.control_id: m for m in uow.messages.list(limit=100)}
    assert len(events) == len(sent) + 2  # one per message, nothing else wrote AuditEvents
    for raw in sent:
        control = raw.split(b"\r", 1)[0].split(b"|")[9].decode()
        row = archived[control]
        event = by_message(events, row.id)
        facility = row.sending_facility
        assert event["agent"][0]["who"]["identifier"] == {"system": FACILITY_SYSTEM, "value": facility}
        assert event["agent"][0]["network"]["address"].startswith("127.0.0.1:")
        assert event["outcome"] == "0" and "(processed)" in event["outcomeDesc"]
        assert {"system": "urn:qyhie:transport", "code": "mllp"} in event["subtype"]
        written = {e["what"]["reference"] for e in event["entity"] if "reference" in e["what"]}
        assert written and written <= set(row.resources)  # the resources this message wrote
        assert any(ref.startswith("Patient/") for ref in written)
        [prov] = [ref for ref in written if ref.startswith("Provenance/")]  # it lists the rest
        assert {ref.split("/")[0] for ref in written} <= {"Patient", "Provenance"}
        with store.unit_of_work() as uow:
            targets = {t["reference"] for t in uow.resources.read(*prov.split("/")).as_dict()["target"]}
        listed = ("Organization", "Practitioner", "Provenance")  # not Provenance targets
        kept = {r for r in row.resources if r.split("/")[0] not in listed}
        assert kept <= targets
        [msg] = [e for e in event["entity"] if "identifier" in e["what"]]
        assert msg["name"] == control
    refusal = by_message(events, archived[refused[0].split(b"\r", 1)[0].split(b"|")[9].decode()].id)
    assert refusal["outcome"] == "4" and "sender not authorised" in refusal["outcomeDesc"]
    assert refusal["outcomeDesc"].startswith("MSA CR (rejected)")
    assert not [e for e in refusal["entity"] if "reference" in e["what"]]  # nothing written
    [malformed] = [m for m in archived.values() if m.control_id is None]
    failure = by_message(events, malformed.id)
    assert failure["outcome"] == "4" and failure["agent"][0]["who"]["display"] == "QYRMYY"


def test_audit_commits_with_the_writes(store: Store) -> None:
    """An AuditEvent that cannot be written rolls the message's writes back (same unit of work)."""

    def failing(uow: object, records: object) -> None:
        raise RuntimeError("audit store full")

    service = IngestService(store, before_commit=failing)
    raw = samples("QYRMYY", 1)[0]
    result = service.ingest(raw, transport="mllp", peer="127.0.0.1:1")
    assert result.outcome != "AA"
    with store.unit_of_work() as uow:
        assert uow.resources.search("Patient", []).matches == []
        assert uow.resources.search("AuditEvent", []).matches == []
