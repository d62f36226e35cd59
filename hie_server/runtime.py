"""The server runtime: uvicorn in an asyncio loop, plus background services in the same loop.

`serve(settings, store, extra_services=...)` starts each `BackgroundService` (the MLLP
listener, schedulers), then runs `uvicorn.Server` until it is told to stop (SIGINT/SIGTERM),
then stops the services in reverse order. The caller owns `store`.

May import: uvicorn, `ehr_store`, `hie_server.*`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Iterator, Sequence
from typing import Protocol

import uvicorn
from fastapi import APIRouter

from ehr_store import Store, Unavailable
from ehr_store.empi import EmpiService
from hie_server.app import FhirModule, create_app
from hie_server.settings import HieSettings

log = logging.getLogger("hie_server.runtime")


class BackgroundService(Protocol):
    """A long-running service sharing the server's event loop (e.g. the MLLP listener).

    `start` returns once the service accepts work (e.g. its socket is bound); `stop` returns
    once it has finished in-flight work and released its resources.
    """

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def uvicorn_config(
    settings: HieSettings,
    store: Store,
    modules: Sequence[FhirModule] = (),
    root_routers: Sequence[APIRouter] = (),
    identity: EmpiService | None = None,
) -> uvicorn.Config:
    """The uvicorn configuration for the app on `settings.http.host:port`."""
    app = create_app(settings, store, modules=modules, root_routers=root_routers, identity=identity)
    return uvicorn.Config(
        app,
        host=settings.http.host,
        port=settings.http.port,
        lifespan="off",
        log_level="info",
        access_log=False,
        server_header=False,
    )


async def _exit_on(stop: asyncio.Event, server: uvicorn.Server) -> None:
    await stop.wait()
    server.should_exit = True


async def stop_services(started: Sequence[BackgroundService]) -> None:
    """Stop `started` services in reverse order; a failing `stop` is logged, never raised."""
    for service in reversed(started):
        try:
            await service.stop()
        except Exception:
            log.exception("stopping %s failed", service.name)


@contextlib.contextmanager
def _signals_end_serving() -> Iterator[list[int]]:
    """While the block runs, SIGINT/SIGTERM outside uvicorn's own handling are only noted.

    uvicorn handles them while it serves, then re-raises the signal once its server returns
    (to end the process as the signal would): with the default action that killed `hie serve`
    before its background services stopped (the MLLP listeners answering what they hold, the
    worker processes, the queued AuditEvents). Noted here instead, the services stop and the
    command returns; a second signal while they stop ends the process at once. Yields the
    signals noted (one that came while the services started means: do not serve).
    """
    noted: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield noted
        return

    def note(sig: int, _frame: object) -> None:
        noted.append(sig)
        if len(noted) > 1:  # asked twice: stop waiting for the services
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield noted
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if noted:
            log.info("stopped on %s", signal.Signals(noted[0]).name)


async def serve(
    settings: HieSettings,
    store: Store,
    *,
    extra_services: Sequence[BackgroundService] = (),
    modules: Sequence[FhirModule] = (),
    root_routers: Sequence[APIRouter] = (),
    stop: asyncio.Event | None = None,
    identity: EmpiService | None = None,
) -> None:
    """Run the HTTP server and `extra_services` in the current event loop until stopped.

    `modules`, `root_routers` and `identity` are passed to `create_app` (FHIR operations;
    `/hl7v2`; the EMPI linking source Patients written through the API).
    Setting `stop` (when given) shuts the server down as SIGINT/SIGTERM would.

    Raises: Unavailable when a service cannot bind its socket; whatever else a service's `start`
    raises (services already started are stopped first).
    """
    server = uvicorn.Server(uvicorn_config(settings, store, modules, root_routers, identity))
    with _signals_end_serving() as signalled:
        await _serve(server, extra_services, stop, signalled)


async def _serve(
    server: uvicorn.Server,
    extra_services: Sequence[BackgroundService],
    stop: asyncio.Event | None,
    signalled: list[int],
) -> None:
    started: list[BackgroundService] = []
    try:
        for service in extra_services:
            try:
                await service.start()
            except OSError as exc:  # e.g. the MLLP port is taken: say so instead of a traceback
                raise Unavailable(f"{service.name} could not start: {exc.strerror or exc}") from exc
            started.append(service)
            log.info("started %s", service.name)
        watcher = asyncio.create_task(_exit_on(stop, server)) if stop is not None else None
        try:
            if not signalled:  # SIGTERM while the services started: stop them instead
                await server.serve()
        finally:
            if watcher is not None:
                watcher.cancel()
            writer = getattr(getattr(server.config.app, "state", None), "audit_writer", None)
            if writer is not None:  # flush queued AuditEvents before the store closes
                await asyncio.to_thread(writer.close)
    finally:
        await stop_services(started)
