"""The DICOMweb proxy's byte path (hie_server.operations.imaging_relay) against a real HTTP
server on loopback (aiohttp.web standing in for Orthanc's answer), without Orthanc."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from ehr_store import Forbidden
from hie_server.operations.imaging_relay import RelayResponse, open_after_check
from imaging import OrthancClient
from imaging.orthanc import READ_LOW_WATER

PART = bytes(range(256)) * 1024  # 256 KiB, every byte value
PARTS = 24
MULTIPART = 'multipart/related; type="application/dicom"; boundary=b0'


@pytest.fixture
async def upstream_server() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """A server streaming PARTS parts of PART (no Content-Length, like Orthanc's multipart);
    `seen` records how far each answer got and whether the client went away."""
    seen: dict[str, Any] = {"sent": 0, "aborted": False, "requests": 0}

    async def study(request: web.Request) -> web.StreamResponse:
        seen["requests"] += 1
        response = web.StreamResponse(headers={"Content-Type": MULTIPART})
        await response.prepare(request)
        try:
            for _ in range(PARTS):
                await response.write(PART)
                seen["sent"] += 1
                await asyncio.sleep(0.005)
        except (ConnectionResetError, asyncio.CancelledError):
            seen["aborted"] = True
            raise
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/dicom-web/studies/1.2.3", study)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def test_relay_passes_bytes_and_headers_unchanged(upstream_server) -> None:
    url, _seen = upstream_server
    async with OrthancClient(url, None, None) as client:
        upstream = await client.open("GET", "/dicom-web/studies/1.2.3")
        response = RelayResponse(upstream, {"Content-Type": upstream.headers["Content-Type"]})
        messages: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            await asyncio.Event().wait()  # the client stays
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        await response({"type": "http"}, receive, send)
    start, *body = messages
    assert start["status"] == 200
    assert dict(start["headers"]) == {b"content-type": MULTIPART.encode()}  # no Content-Length invented
    assert b"".join(m["body"] for m in body) == PART * PARTS
    assert [m["more_body"] for m in body][-1] is False and all(m["more_body"] for m in body[:-1])


async def test_relay_stops_reading_when_the_client_goes_away(upstream_server) -> None:
    url, seen = upstream_server
    gone = asyncio.Event()
    async with OrthancClient(url, None, None) as client:
        upstream = await client.open("GET", "/dicom-web/studies/1.2.3")
        received = 0

        async def receive() -> dict[str, Any]:
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal received
            received += len(message.get("body", b""))
            if received >= 2 * len(PART):
                gone.set()  # the viewer closed the tab after two parts

        await asyncio.wait_for(RelayResponse(upstream, {})({"type": "http"}, receive, send), 10)
        await asyncio.sleep(0.2)
    assert seen["aborted"] and seen["sent"] < PARTS  # Orthanc's answer was cut off, not drained


async def test_refused_check_drops_the_upstream_request(upstream_server) -> None:
    url, seen = upstream_server

    async def refuse() -> None:
        await asyncio.sleep(0.05)  # the request to the archive is already on its way
        raise Forbidden("access refused by rule 'specialist-needs-referral'")

    async with OrthancClient(url, None, None) as client:
        with pytest.raises(Forbidden):
            await open_after_check(client.open("GET", "/dicom-web/studies/1.2.3"), refuse())
        await asyncio.sleep(0.2)
    assert seen["requests"] == 1 and seen["aborted"] and seen["sent"] < PARTS


async def test_passed_check_returns_the_open_upstream(upstream_server) -> None:
    url, _seen = upstream_server

    async def allow() -> None:
        await asyncio.sleep(0)

    async with OrthancClient(url, None, None) as client:
        upstream = await open_after_check(client.open("GET", "/dicom-web/studies/1.2.3"), allow())
        try:
            assert upstream.status_code == 200 and len(await upstream.aread()) == len(PART) * PARTS
        finally:
            await upstream.aclose()


async def _raw_server(answer_head: bytes, pieces: list[bytes]) -> tuple[asyncio.Server, str]:
    """A server writing `answer_head` then `pieces` 20 ms apart, then closing."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer_head)
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.02)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def _low_water(upstream: Any) -> int:
    sock = upstream._response.connection.transport.get_extra_info("socket")
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT))


async def test_answer_ending_at_close_gathers_reads_and_loses_no_tail() -> None:
    pieces = [b"a" * 1000] * 3 + [b"b" * (300 << 10), b"tail"]  # small, big, small: < low water at the end
    head = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: " + MULTIPART.encode() + b"\r\n\r\n"
    server, url = await _raw_server(head, pieces)
    async with server, OrthancClient(url, None, None) as client:
        upstream = await client.open("GET", "/dicom-web/studies/1.2.3")
        chunks = upstream.aiter_raw()
        first = await chunks.__anext__()
        assert _low_water(upstream) == READ_LOW_WATER
        body = first + b"".join([c async for c in chunks])
    assert body == b"".join(pieces)


async def test_keep_alive_answer_with_length_keeps_default_wakeups() -> None:
    body = b"x" * 5000
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nContent-Type: application/dicom\r\n\r\n"
    server, url = await _raw_server(head, [body[:100], body[100:]])
    async with server, OrthancClient(url, None, None) as client:
        upstream = await client.open("GET", "/wado")
        chunks = upstream.aiter_raw()
        first = await chunks.__anext__()
        assert _low_water(upstream) == 1  # a reusable connection must not keep a raised low-water mark
        assert first + b"".join([c async for c in chunks]) == body
