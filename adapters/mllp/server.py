"""Asyncio MLLP listener (HL7 v2.5 Appendix C.4): the MLLP composition root's transport.

Many concurrent connections; messages on one connection are processed strictly in order
(a connection's next frame is handled only after the previous message's ACK was written).
Messages waiting from different connections are handled together (group commit): one
unit of work archives the batch, one writes its resources (`IngestService.accept_many` /
`process_many`), so each commit is shared (a batch waits up to `batch_wait_ms` for the
other connections); no ACK is written before its commit. The
ingest service runs in a thread pool (it does blocking database work). A connection is never
closed instead of a NAK: oversized frames, undecodable bytes and internal errors all get an
ACK with MSA-1 AR/AE; only an idle timeout or the peer closes it. In enhanced mode the
accept ACK (CA) is written as soon as the raw message is durable, then the application ACK
when MSH-16 asks for it. Optional TLS, with client certificates when a CA is configured.
A `gate` (wired by the composition root) decides per connection, from the peer address and
its verified client certificate, which frames it may send; a refused frame is archived as
rejected and answered AR (`IngestService.reject`); the connection stays open.

May import: the standard library, `adapters.*` (no fastapi).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from adapters.hl7v2.framing import FrameTooLarge, MllpDecoder, frame
from adapters.ingest import IngestService
from adapters.settings import MllpSettings

log = logging.getLogger(__name__)

FrameCheck = Callable[[bytes], str | None]
"""One connection's check of a frame: why it is refused, or None to accept it."""
SenderGate = Callable[[str, dict[str, Any] | None], FrameCheck]
"""Per connection: (peer `host:port`, the verified client certificate as
`ssl.SSLSocket.getpeercert()` gives it, or None) -> the check its frames must pass."""


def server_ssl_context(settings: MllpSettings) -> ssl.SSLContext | None:
    """TLS context from settings (None when no certificate is configured)."""
    if settings.tls_cert is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(settings.tls_cert), str(settings.tls_key) if settings.tls_key else None)
    if settings.tls_client_ca is not None:
        ctx.load_verify_locations(str(settings.tls_client_ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _resolve(future: asyncio.Future[list[bytes]], frames: list[bytes]) -> None:
    """Hand a connection its frames, unless it is gone (cancelled when the server stops;
    the message itself is committed and its ACK archived for a resend)."""
    if not future.done():
        future.set_result(frames)


def _check_free(host: str, port: int) -> None:
    """Raise OSError(EADDRINUSE) when any socket, shared or not, holds `host:port`."""
    for family, kind, proto, _name, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "in use"
            try:
                probe.bind(address)
            except OSError as exc:  # say which address, as a plain bind's error does
                raise OSError(exc.errno, f"{exc.strerror} ({host}:{port})") from exc


@dataclass(eq=False)
class _Job:
    raw: bytes
    peer: str
    accepted: asyncio.Future[list[bytes]]
    done: asyncio.Future[list[bytes]]


class MllpServer:
    """The MLLP listener as a background service (`start`/`stop`, see hie_server.runtime)."""

    name = "mllp"

    def __init__(
        self,
        service: IngestService,
        settings: MllpSettings | None = None,
        *,
        workers: int = 4,
        gate: SenderGate | None = None,
        share_port: Literal["first", "join"] | None = None,
    ) -> None:
        """`share_port`: None binds the port alone; "first" binds it with SO_REUSEPORT for
        listeners of other processes to join (after checking nobody holds it, so a second
        exchange cannot silently share a running one's port); "join" binds with SO_REUSEPORT
        beside the "first" one (`MllpSettings.processes`: the kernel spreads the connections
        over the listeners; a connection stays with the one that accepted it)."""
        self.service = service
        self.gate = gate
        self.share_port = share_port
        self.settings = settings or MllpSettings()
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mllp")
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._queue: asyncio.Queue[_Job] | None = None
        self._writers: list[asyncio.Task[None]] = []

    @property
    def port(self) -> int:
        """The bound port (useful with port 0). Raises: RuntimeError before `start`."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("MLLP server not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Bind and start accepting connections. Raises: OSError (port in use), ssl.SSLError."""
        if self.share_port == "first" and self.settings.port:
            _check_free(self.settings.host, self.settings.port)
        self._queue = asyncio.Queue()
        self._writers = [
            asyncio.create_task(self._dispatch(self._queue), name=f"mllp-writer-{i}")
            for i in range(self.settings.writers)
        ]
        self._server = await asyncio.start_server(
            self._on_connection,
            self.settings.host,
            self.settings.port,
            ssl=server_ssl_context(self.settings),
            reuse_port=self.share_port is not None or None,
        )
        log.info(
            "MLLP listening on %s:%s%s",
            self.settings.host,
            self.port,
            " (TLS)" if self.settings.tls_cert else "",
        )

    async def stop(self) -> None:
        """Stop accepting, let in-flight messages finish their ACK, close connections."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for writer in self._writers:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self._executor.shutdown(wait=True)

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        decoder = MllpDecoder(self.settings.max_frame_bytes)
        check = self.gate(peer, writer.get_extra_info("peercert")) if self.gate is not None else None
        try:
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(65536), self.settings.idle_timeout_s)
                except TimeoutError:
                    break
                if not data:
                    break
                for item in decoder.feed(data):
                    await self._answer(item, writer, peer, check)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
            log.info("MLLP connection from %s ended: %s", peer, type(exc).__name__)
        except asyncio.CancelledError:  # server stopping: end quietly (asyncio logs cancelled handlers)
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(
        self, item: bytes | FrameTooLarge, writer: asyncio.StreamWriter, peer: str, check: FrameCheck | None
    ) -> None:
        loop = asyncio.get_running_loop()
        if isinstance(item, FrameTooLarge):
            nak = await loop.run_in_executor(
                self._executor,
                self.service.oversized_nak,
                item.head,
                item.size,
                self.settings.max_frame_bytes,
            )
            writer.write(frame(nak))
            await writer.drain()
            return
        refusal = check(item) if check is not None else None
        if refusal is not None:
            naks = await loop.run_in_executor(
                self._executor,
                functools.partial(self.service.reject, item, refusal, transport="mllp", peer=peer),
            )
            for nak in naks:
                writer.write(frame(nak))
            await writer.drain()
            return
        assert self._queue is not None
        job = _Job(item, peer, loop.create_future(), loop.create_future())
        await self._queue.put(job)
        try:
            first = await job.accepted
        except Exception:
            first = [self.service.internal_error_nak(item)]
        for ack in first:
            writer.write(frame(ack))
        await writer.drain()
        try:
            later = await job.done
        except Exception:
            later = [] if first else [self.service.internal_error_nak(item)]
        for ack in later:
            writer.write(frame(ack))
        if later:
            await writer.drain()

    async def _gather(self, queue: asyncio.Queue[_Job]) -> list[_Job]:
        """The next batch: the first waiting message, then whatever the other connections send
        within `batch_wait_ms` (up to `batch_max`). A connection has at most one message in
        flight, so the wait ends as soon as every open connection has one in the batch; with
        one connection there is no wait. Without it, senders answered together fall out of
        step and half the batches hold one message (two commits each)."""
        loop = asyncio.get_running_loop()
        jobs = [await queue.get()]
        deadline = loop.time() + self.settings.batch_wait_ms / 1000
        while len(jobs) < self.settings.batch_max:
            if not queue.empty():
                jobs.append(queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0 or len(jobs) >= len(self._connections):
                break
            try:
                jobs.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return jobs

    async def _dispatch(self, queue: asyncio.Queue[_Job]) -> None:
        """Take the waiting messages (up to `batch_max`), accept them together, send the
        accept-level frames, process them together, send the rest."""
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._gather(queue)
            try:
                accs = await loop.run_in_executor(
                    self._executor,
                    functools.partial(
                        self.service.accept_many,
                        [j.raw for j in jobs],
                        transport="mllp",
                        peers=[j.peer for j in jobs],
                    ),
                )
                pending = []
                for job, acc in zip(jobs, accs, strict=True):
                    _resolve(job.accepted, list(acc.frames))
                    if acc.done:
                        _resolve(job.done, [])
                    else:
                        pending.append((job, acc))
                if pending:
                    results = await loop.run_in_executor(
                        self._executor, self.service.process_many, [acc for _j, acc in pending]
                    )
                    for (job, _acc), frames in zip(pending, results, strict=True):
                        _resolve(job.done, frames)
            except Exception as exc:  # the service never raises; keep the connections answered anyway
                log.exception("MLLP dispatch failed")
                for job in jobs:
                    for fut in (job.accepted, job.done):
                        if not fut.done():
                            fut.set_exception(exc)
