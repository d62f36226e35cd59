"""MLLP on real loopback sockets: split frames, several frames per read, concurrent
connections, in-order processing per connection, oversized frames, garbage, enhanced mode,
the blocking client, and HL7 over HTTP."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from adapters.hl7v2.ack import read_ack
from adapters.hl7v2.framing import MllpDecoder, frame
from adapters.http import hl7v2_router
from adapters.ingest import IngestService
from adapters.mllp.client import MllpClient
from adapters.mllp.server import MllpServer
from adapters.settings import MllpSettings
from ehr_store import MemoryStore, StoreSettings, json_loads

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "adapters"))
import hl7_messages as M


def adt(cid: str, phone: str = "13800001234") -> bytes:
    return M.ADT_A01_FULL.replace("|M1001|", f"|{cid}|").replace("13800001234", phone).encode()


@pytest.fixture
async def server() -> AsyncIterator[MllpServer]:
    store = MemoryStore(StoreSettings(database_url="memory://"))
    srv = MllpServer(IngestService(store), MllpSettings(port=0, max_frame_bytes=64 * 1024))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def read_acks(reader: asyncio.StreamReader, n: int) -> list[bytes]:
    decoder, out = MllpDecoder(), []
    while len(out) < n:
        data = await asyncio.wait_for(reader.read(65536), 10)
        assert data, "connection closed before all ACKs"
        out += [f for f in decoder.feed(data) if isinstance(f, bytes)]
    return out


async def test_frames_split_across_writes(server: MllpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    data = frame(adt("S1"))
    for i in range(0, len(data), 7):
        writer.write(data[i : i + 7])
        await writer.drain()
        await asyncio.sleep(0)
    [ack] = await read_acks(reader, 1)
    assert read_ack(ack).code == "AA" and read_ack(ack).control_id == "S1"
    writer.close()


async def test_several_frames_in_one_write_are_answered_in_order(server: MllpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    # the same patient's phone changes on every message: order matters
    writer.write(b"junk" + b"".join(frame(adt(f"O{i}", f"1380000{i:04d}")) for i in range(20)))
    await writer.drain()
    acks = await read_acks(reader, 20)
    assert [read_ack(a).control_id for a in acks] == [f"O{i}" for i in range(20)]
    assert {read_ack(a).code for a in acks} == {"AA"}
    with server.service.store.unit_of_work() as uow:
        patient = json_loads(uow.resources.read("Patient", "QYRMYY-QY0200001").content)
    assert patient["telecom"][0]["value"] == "13800000019"
    writer.close()


async def test_concurrent_connections(server: MllpServer) -> None:
    async def one(conn: int) -> list[str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        codes = []
        for i in range(10):
            writer.write(frame(adt(f"C{conn}-{i}").replace(b"QY0200001", f"QY3{conn:06d}".encode())))
            await writer.drain()
            [ack] = await read_acks(reader, 1)
            info = read_ack(ack)
            assert info.control_id == f"C{conn}-{i}"
            codes.append(info.code)
        writer.close()
        return codes

    results = await asyncio.gather(*(one(c) for c in range(8)))
    assert all(code == "AA" for codes in results for code in codes)


async def test_oversized_frame_and_garbage_get_naks_and_the_connection_stays_open(server: MllpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    big = adt("BIG").replace(b"ZPI|1|", b"ZPI|1|" + b"x" * 70_000)
    writer.write(frame(big) + frame(b"\xff\xfe not hl7") + frame(adt("AFTER")))
    await writer.drain()
    acks = [read_ack(a) for a in await read_acks(reader, 3)]
    assert (acks[0].code, acks[0].control_id, acks[0].errors[0][0]) == ("AR", "BIG", "104")
    assert acks[1].code == "AR" and acks[2].code == "AA"
    writer.close()


async def test_enhanced_mode_sends_commit_then_application_ack(server: MllpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(frame(adt("E1").replace(b"|P|2.5|||||CHN|", b"|P|2.5|||AL|AL|CHN|")))
    await writer.drain()
    assert [read_ack(a).code for a in await read_acks(reader, 2)] == ["CA", "AA"]
    writer.close()


async def test_blocking_client_and_duplicates(server: MllpServer) -> None:
    def run() -> list[list[str]]:
        with MllpClient("127.0.0.1", server.port, timeout=10) as client:
            first = [read_ack(a).code for a in client.send(adt("B1"))]
            again = [read_ack(a).code for a in client.send(adt("B1"))]
            enhanced = [
                read_ack(a).code
                for a in client.send(adt("B2").replace(b"|P|2.5|||||CHN|", b"|P|2.5|||AL|AL|CHN|"))
            ]
        return [first, again, enhanced]

    assert await asyncio.to_thread(run) == [["AA"], ["AA"], ["CA", "AA"]]


async def test_hl7_over_http_answers_the_same_ack() -> None:
    store = MemoryStore(StoreSettings(database_url="memory://"))
    app = FastAPI()
    app.include_router(hl7v2_router(IngestService(store)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        ok = await client.post("/hl7v2", content=adt("H1"), headers={"content-type": "application/hl7-v2"})
        assert ok.status_code == 200 and read_ack(ok.content).code == "AA"
        assert ok.headers["content-type"].startswith("application/hl7-v2")
        gb = M.ADT_A01_FULL.replace("UNICODE UTF-8", "GB 18030-2000").replace("|M1001|", "|H2|")
        resp = await client.post(
            "/hl7v2", content=gb.encode("gb18030"), headers={"content-type": "text/plain"}
        )
        assert resp.status_code == 200 and "charset=gb18030" in resp.headers["content-type"]
        no_msh = await client.post("/hl7v2", content=b"PID|1||X\r", headers={"content-type": "text/plain"})
        assert no_msh.status_code == 200 and read_ack(no_msh.content).code == "AR"
        not_hl7 = await client.post("/hl7v2", content=b"hello world", headers={"content-type": "text/plain"})
        assert not_hl7.status_code == 400
        wrong_type = await client.post(
            "/hl7v2", content=adt("H3"), headers={"content-type": "application/json"}
        )
        assert wrong_type.status_code == 415
