"""HL7 v2 over HTTP: `POST /hl7v2` with the ER7 message as body (INTERFACES.md).

Content types `application/hl7-v2`, `x-application/hl7-v2+er7`, `text/plain`; the answer
is the same ACK the MLLP listener would give (HTTP 200, same content type, charset of the
ACK). In enhanced mode the body is the application ACK when MSH-16 asks for one, else the
accept ACK. 415 for another content type, 400 only when the body is not HL7 at all (empty,
or no line that starts with a segment id and a field separator).

May import: fastapi/starlette (only here in adapters), the standard library, `adapters.*`.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from adapters.ingest import IngestService

CONTENT_TYPES = ("application/hl7-v2", "x-application/hl7-v2+er7", "text/plain")
_SEGMENT_LINE = re.compile(rb"(?:^|[\r\n])(?:\xef\xbb\xbf)?[A-Z][A-Z0-9]{2}[|^~\\&#!@$%*+,./:;=?`'\"]")


def looks_like_hl7(body: bytes) -> bool:
    """True when some line starts with a segment id followed by a delimiter."""
    return bool(body.strip()) and bool(_SEGMENT_LINE.search(body[:65536]))


def hl7v2_router(service: IngestService, path: str = "/hl7v2") -> APIRouter:
    """The APIRouter to mount at the application root (`create_app(root_routers=[...])`)."""
    router = APIRouter(tags=["HL7 v2"])

    @router.post(path, response_class=Response, summary="Ingest one HL7 v2 message (ER7); returns the ACK")
    async def post_hl7v2(request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in CONTENT_TYPES:
            return PlainTextResponse(
                f"unsupported content type {ctype or '(none)'}; use one of {', '.join(CONTENT_TYPES)}",
                status_code=415,
            )
        body = await request.body()
        if not looks_like_hl7(body):
            return PlainTextResponse("the body is not an HL7 v2 message (ER7)", status_code=400)
        peer = f"{request.client.host}:{request.client.port}" if request.client else None
        result = await run_in_threadpool(service.ingest, body, transport="http", peer=peer)
        return Response(content=result.ack, status_code=200, media_type=f"{ctype}; charset={result.codec}")

    return router
