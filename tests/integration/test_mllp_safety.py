"""Ingestion safety on real loopback sockets: one message per MLLP frame (HL7 v2.5
Appendix C), one per HTTP body, the same message on 8 connections at once is written once,
and a reused MSH-10 with other content is stored, not dropped."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from adapters.hl7v2.ack import read_ack
from adapters.hl7v2.framing import frame
from adapters.http import hl7v2_router
from adapters.ingest import IngestService
from adapters.mllp.server import MllpServer
from adapters.settings import MllpSettings
from ehr_store import MemoryStore, Store, StoreSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "adapters"))
import hl7_messages as M
from test_mllp_loopback import read_acks


def adt(cid: str, phone: str = "13800001234") -> bytes:
    return M.ADT_A01_FULL.replace("|M1001|", f"|{cid}|").replace("13800001234", phone).encode()


@pytest.fixture
async def served() -> AsyncIterator[tuple[MllpServer, Store]]:
    store = MemoryStore(StoreSettings(database_url="memory://"))
    srv = MllpServer(IngestService(store), MllpSettings(port=0))
    await srv.start()
    try:
        yield srv, store
    finally:
        await srv.stop()


def archive(store: Store) -> list[tuple[str | None, str]]:
    with store.unit_of_work() as uow:
        return [(m.control_id, m.status) for m in reversed(uow.messages.list(limit=100))]


async def send(port: int, data: bytes, n: int = 1) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await read_acks(reader, n)
    finally:
        writer.close()


async def test_two_messages_in_one_frame_are_rejected_and_the_connection_goes_on(
    served: tuple[MllpServer, Store],
) -> None:
    srv, store = served
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(frame(adt("TWO1") + adt("TWO2")) + frame(adt("ONE3")))
    await writer.drain()
    acks = await read_acks(reader, 2)
    writer.close()
    assert [read_ack(a).code for a in acks] == ["AR", "AA"]
    assert b"more than one message in a frame" in acks[0]
    assert archive(store) == [("TWO1", "rejected"), ("ONE3", "processed")]


async def test_same_message_on_8_connections_is_written_once(served: tuple[MllpServer, Store]) -> None:
    srv, store = served
    acks = await asyncio.gather(*(send(srv.port, frame(adt("SAME1"))) for _ in range(8)))
    assert {read_ack(a[0]).code for a in acks} == {"AA"}
    assert len({a[0] for a in acks}) == 1  # every copy got the first copy's ACK
    assert archive(store) == [("SAME1", "processed")]


async def test_reused_control_id_with_other_content_is_stored(served: tuple[MllpServer, Store]) -> None:
    srv, store = served
    first = await send(srv.port, frame(adt("REUSE1")))
    second = await send(srv.port, frame(adt("REUSE1", phone="13800009876")))
    assert read_ack(first[0]).code == read_ack(second[0]).code == "AA" and first != second
    assert archive(store) == [("REUSE1", "processed"), ("REUSE1", "processed")]
    with store.unit_of_work() as uow:
        patients = uow.resources.search("Patient", [("phone", "13800009876")]).matches
    assert len(patients) == 1  # the second message's data was written


async def test_http_body_with_two_messages_and_concurrent_copies() -> None:
    store = MemoryStore(StoreSettings(database_url="memory://"))
    app = FastAPI()
    app.include_router(hl7v2_router(IngestService(store)))
    headers = {"content-type": "application/hl7-v2"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        two = await client.post("/hl7v2", content=adt("H1") + adt("H2"), headers=headers)
        assert read_ack(two.content).code == "AR" and b"more than one message" in two.content
        copies = await asyncio.gather(
            *(client.post("/hl7v2", content=adt("H3"), headers=headers) for _ in range(8))
        )
    assert {read_ack(r.content).code for r in copies} == {"AA"}
    assert archive(store) == [("H1", "rejected"), ("H3", "processed")]
