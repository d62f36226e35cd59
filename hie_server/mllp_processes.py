"""More MLLP listener processes on the main listener's port (`HIE_MLLP__PROCESSES`, PostgreSQL).

One Python process runs one writer at a time (the interpreter lock), and a unit of work spends
part of its time waiting for PostgreSQL; with `processes = N` the server runs N-1 worker
processes beside its own listener, each binding the same host and port with `SO_REUSEPORT`
(Linux spreads new connections over the listening sockets; a connection stays with the process
that accepted it, so one connection's messages are still processed in order) and each composed
as `hie serve` composes ingestion: its own store connections, EMPI, terminology service, import
AuditEvents and client-certificate gate (`hie_server.cli_hl7.build_ingest_service`). Concurrent
writers are safe on PostgreSQL (row locks, EMPI advisory locks, lost write races retried:
docs/operations.md "Throughput"); SQLite has one writer, so the composition root refuses more
than one process there (`check_processes`).

`MllpProcesses` is a `BackgroundService`: `start` spawns the workers and returns once each has
bound the port (raises `Unavailable` when one cannot); a worker that dies is started again
(after 1 s, logged as an error); `stop` sends SIGTERM, which lets each worker answer the messages
it holds (`MllpServer.stop`) and write its held unmapped-code counts, then waits (`stop_timeout_s`,
SIGKILL after it).

May import: the standard library, `adapters`, `ehr_store`, `hie_server.*` (the worker's
composition), `terminology`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.process
import multiprocessing.queues
import os
import queue
import signal
import time
from collections.abc import Callable

from ehr_store import Unavailable, open_store
from hie_server.settings import HieSettings

log = logging.getLogger("hie_server.mllp_processes")

_START_TIMEOUT_S = 120.0


def check_processes(settings: HieSettings) -> str | None:
    """Why `settings.mllp.processes` cannot be served (None when it can): more than one MLLP
    process needs PostgreSQL, whose concurrent writers the store supports; SQLite writes one
    unit at a time, so extra processes would only queue on its lock."""
    if settings.mllp.processes > 1 and not settings.store.database_url.startswith("postgresql"):
        return (
            f"{settings.mllp.processes} MLLP processes (--mllp-processes / HIE_MLLP__PROCESSES) need "
            "PostgreSQL (HIE_DATABASE_URL postgresql+psycopg://...): SQLite takes one writer at a time; use 1"
        )
    return None


class MllpProcesses:
    """`settings.mllp.processes - 1` worker processes listening on the main listener's port.

    `port`: the bound port, asked at `start` (the main `MllpServer` starts first, so port 0
    works). The workers inherit nothing but `settings` (spawned, not forked).
    """

    name = "mllp-processes"

    def __init__(self, settings: HieSettings, port: Callable[[], int], stop_timeout_s: float = 60.0) -> None:
        self.settings = settings
        self._port = port
        self.stop_timeout_s = stop_timeout_s
        self._ctx = multiprocessing.get_context("spawn")
        # every worker started and not yet replaced (a dead one stays until its replacement
        # starts, so a failed restart is tried again), also one still starting
        self._procs: list[multiprocessing.process.BaseProcess] = []
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        """Process ids of the running workers."""
        return [p.pid for p in self._procs if p.pid is not None and p.is_alive()]

    def _spawn(self, settings: HieSettings) -> multiprocessing.process.BaseProcess:
        ready: multiprocessing.queues.Queue[str] = self._ctx.Queue()
        proc = self._ctx.Process(
            target=run_worker, args=(settings, ready, os.getpid()), name="hie-mllp", daemon=False
        )
        proc.start()
        self._procs.append(proc)  # before the check: `stop` sets the flag, then reads this list
        if self._stopping:  # stopping meanwhile (a restart racing SIGTERM): never left running
            proc.terminate()
            proc.join(10)
            raise Unavailable("stopping")
        answer = "did not start in time"
        deadline = time.monotonic() + _START_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                try:
                    answer = ready.get(timeout=0.2)
                    break
                except queue.Empty:
                    if not proc.is_alive():
                        answer = f"it exited with {proc.exitcode}"
                        break
        finally:
            ready.close()
        if answer != "ready":
            proc.terminate()
            proc.join(10)
            raise Unavailable(f"an MLLP worker process could not start: {answer}")
        return proc

    async def start(self) -> None:
        """Spawn the workers on the bound port. Raises: Unavailable (one could not start;
        those already started are stopped)."""
        count = self.settings.mllp.processes - 1
        if count <= 0:
            return
        mllp = self.settings.mllp.model_copy(update={"port": self._port()})
        settings = self.settings.model_copy(update={"mllp": mllp})
        self.settings = settings
        try:
            for _ in range(count):
                await asyncio.to_thread(self._spawn, settings)
        except Unavailable:
            await self.stop()
            raise
        log.info("%d more MLLP process(es) on port %s: pids %s", count, mllp.port, self.pids)
        self._watch = asyncio.create_task(self._supervise(), name="mllp-processes-watch")

    async def _supervise(self) -> None:
        while not self._stopping:
            await asyncio.sleep(1.0)
            for proc in [p for p in self._procs if not p.is_alive()]:
                if self._stopping:
                    break
                log.error("MLLP worker process %s exited with %s; starting another", proc.pid, proc.exitcode)
                self._procs.remove(proc)
                try:
                    await asyncio.to_thread(self._spawn, self.settings)
                except Unavailable as exc:
                    if not self._stopping:
                        log.error("%s; trying again in 1 s", exc.diagnostics)

    async def stop(self) -> None:
        """SIGTERM every worker (each finishes the messages it holds), wait up to
        `stop_timeout_s`, then SIGKILL what is left."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        # every process started, also one a restart is still waiting for
        procs, self._procs = self._procs, []
        for proc in procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM

        def wait() -> None:
            for proc in procs:
                proc.join(self.stop_timeout_s)
                if proc.is_alive():
                    log.error("MLLP worker process %s did not stop; killing it", proc.pid)
                    proc.kill()
                    proc.join(5)

        await asyncio.to_thread(wait)


def run_worker(settings: HieSettings, ready: multiprocessing.queues.Queue[str], parent: int) -> None:
    """A worker process's main: ingestion composed as `hie serve` does, one MLLP listener on
    `settings.mllp` (port shared with SO_REUSEPORT), until SIGTERM/SIGINT or until its
    `parent` process is gone (killed, say: the worker then stops as on SIGTERM instead of
    serving the port unsupervised). Puts "ready" on `ready` once bound, or the reason it could
    not start."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"
    )
    try:
        asyncio.run(_worker(settings, ready, parent))
    except Exception as exc:  # reported to the parent when it happens before "ready"
        with contextlib.suppress(Exception):
            ready.put(f"{type(exc).__name__}: {exc}")
        raise


async def _orphaned(parent: int, stop: asyncio.Event) -> None:
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    log.error("hie serve (pid %s) is gone; this MLLP worker stops", parent)
    stop.set()


async def _worker(settings: HieSettings, ready: multiprocessing.queues.Queue[str], parent: int) -> None:
    from ehr_store.empi import EmpiService, load_rules
    from hie_server.cli_hl7 import build_ingest_service, mllp_services
    from hie_server.runtime import BackgroundService, stop_services
    from hie_server.startup import UnmappedCountFlusher
    from terminology import TerminologyService

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    store = await asyncio.to_thread(open_store, settings.store)
    started: list[BackgroundService] = []
    try:
        terminology = TerminologyService(store, settings.terminology)
        ingest = build_ingest_service(
            settings, store, terminology=terminology, empi=EmpiService(load_rules(settings.empi))
        )
        services: list[BackgroundService] = [*mllp_services(settings, store, service=ingest, role="worker")]
        if settings.terminology.unmapped_flush_seconds > 0:
            services.append(UnmappedCountFlusher(terminology))
        for service in services:
            await service.start()
            started.append(service)
        ready.put("ready")
        watch = asyncio.create_task(_orphaned(parent, stop))
        await stop.wait()
        watch.cancel()
    finally:
        await stop_services(started)
        await asyncio.to_thread(store.close)
