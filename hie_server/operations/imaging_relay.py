"""Relaying an Orthanc answer to the client as it arrives: the byte path of the DICOMweb proxy.

`RelayResponse(upstream, headers)` is a Starlette `Response` whose ASGI call sends the status
and headers, then every chunk `Upstream.aiter_raw()` yields, as it is, with no per-chunk work
of ours: no decoding, no re-encoding, no copy, no compression (the app has no GZip middleware;
a DICOM or multipart/related body must never be compressed by anything in this path). Only
the JSON/XML answers the proxy builds itself (QIDO-RS) carry rewritten content; Orthanc
writes the exchange's URLs into metadata from the `Forwarded` header we send.

Compared with `StreamingResponse` this skips the per-request task group and the per-chunk
type checks; a small watcher task notices the client going away (uvicorn drops writes to a
closed connection silently) so the relay stops reading from Orthanc instead of draining the
rest of a study into nowhere. The upstream connection is released in every case.

`open_after_check(opening, check)`: await the access check while the request to Orthanc is
already on its way (hides Orthanc's time to first byte behind ours); if the check refuses,
the pending or opened upstream is dropped before anything reaches the client.

May import: starlette, `imaging` (Upstream), `ehr_store` (errors).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from imaging import Upstream


class RelayResponse(Response):
    """`upstream`'s status and body; `headers` are the ones to pass on (module docstring)."""

    def __init__(self, upstream: Upstream, headers: Mapping[str, str]) -> None:
        self.upstream = upstream
        self.status_code = upstream.status_code
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI: relay, stop early when the client disconnects. Raises: Unavailable (Orthanc
        broke off mid-answer: the server then closes the connection, so the client sees a
        truncated body, never a complete-looking one)."""
        gone = asyncio.ensure_future(_disconnect(receive))
        chunks = self.upstream.aiter_raw()
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            async for chunk in chunks:
                if gone.done():
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # ASGI 2.4 servers raise on writing to a closed connection: client gone
            return
        finally:
            gone.cancel()
            await chunks.aclose()
            await self.upstream.aclose()


async def _disconnect(receive: Receive) -> None:
    """Return once the client has gone (or the response is complete)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def open_after_check(opening: Awaitable[Upstream], check: Awaitable[None]) -> Upstream:
    """Run `check` while `opening` (a request to Orthanc) proceeds; the upstream answer once
    the check has passed. Raises: whatever `check` raises (the upstream is then dropped),
    else whatever `opening` raises (Unavailable)."""
    pending = asyncio.ensure_future(opening)
    try:
        await check
    except BaseException:
        pending.cancel()
        with contextlib.suppress(BaseException):
            await (await pending).aclose()
        raise
    return await pending
