"""Content negotiation, request bodies and raw-bytes FHIR JSON responses.

Responses carry the stored JSON bytes unchanged (no re-serialisation through models);
`_pretty=true` re-indents the bytes without parsing numbers, so `1.50` stays `1.50`.
FHIR R4B http §3.1.0.1.10 (`_format`, `Accept`), §3.1.0.1.11 (`_pretty`).

May import: starlette/fastapi, orjson, `ehr_store`, `hie_server.errors`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ehr_store import json_dumps
from hie_server.errors import FHIR_JSON, NotAcceptable, PayloadTooLarge, UnsupportedMediaType

PLAIN_JSON = "application/json"
JSON_PATCH = "application/json-patch+json"
FORM = "application/x-www-form-urlencoded"
SUPPORTED_TEXT = "supported formats: application/fhir+json, application/json (_format=json)"

_FORMAT_ALIASES = {
    "json": FHIR_JSON,
    "application/fhir+json": FHIR_JSON,
    "application/json+fhir": FHIR_JSON,
    "application/json": PLAIN_JSON,
    "text/json": PLAIN_JSON,
}
_ANY = {"*/*", "application/*"}
_RESOURCE_BODY_TYPES = frozenset({FHIR_JSON, PLAIN_JSON, "application/json+fhir", "text/json"})


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """The negotiated response media type and whether to pretty-print."""

    media_type: str = FHIR_JSON
    pretty: bool = False


def _media_types(header: str) -> list[str]:
    return [part.split(";", 1)[0].strip().lower() for part in header.split(",") if part.strip()]


def negotiate(request: Request) -> OutputFormat:
    """Choose the response format from `_format`, then `Accept`; store it on `request.state`.

    Raises: NotAcceptable (406) when only unsupported formats (XML, ...) are acceptable.
    """
    pretty = request.query_params.get("_pretty", "false").lower() == "true"
    fmt = request.query_params.get("_format")
    if fmt is not None:
        # '+' in an unencoded query string arrives as a space
        media = _FORMAT_ALIASES.get(fmt.strip().lower().replace(" ", "+"))
        if media is None:
            raise NotAcceptable(f"_format={fmt} is not supported; {SUPPORTED_TEXT}")
        chosen = OutputFormat(media, pretty)
    else:
        chosen = OutputFormat(FHIR_JSON, pretty)
        accept = request.headers.get("accept")
        if accept:
            types = _media_types(accept)
            acceptable = [t for t in types if t in _FORMAT_ALIASES or t in _ANY]
            if not acceptable:
                raise NotAcceptable(f"cannot produce {accept}; {SUPPORTED_TEXT}")
            first = acceptable[0]
            chosen = OutputFormat(_FORMAT_ALIASES.get(first, FHIR_JSON), pretty)
    request.state.output_format = chosen
    return chosen


async def negotiate_dependency(request: Request) -> OutputFormat:
    """FastAPI dependency form of `negotiate` (async, so it runs without a thread hop)."""
    return negotiate(request)


def body_media_type(request: Request) -> str | None:
    """The request's Content-Type without parameters, lower-cased (None when absent)."""
    header = request.headers.get("content-type")
    return header.split(";", 1)[0].strip().lower() if header else None


def check_body_media_type(request: Request, allowed: Collection[str] = _RESOURCE_BODY_TYPES) -> str:
    """Accept the request body's media type or raise UnsupportedMediaType (415).

    A missing Content-Type is read as FHIR JSON. Returns the media type.
    """
    media = body_media_type(request) or FHIR_JSON
    if media not in allowed:
        raise UnsupportedMediaType(f"request body media type {media} is not supported; {SUPPORTED_TEXT}")
    return media


async def read_body(request: Request, limit: int) -> bytes:
    """Read the whole request body, at most `limit` bytes.

    Raises: PayloadTooLarge (413).
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\],:]|[^\s{}\[\],:"]+')


def reindent(data: bytes, indent: int = 2) -> bytes:
    """Pretty-print JSON bytes without parsing values (numbers keep their text)."""
    out: list[bytes] = []
    depth = 0
    tokens = [m.group() for m in _TOKEN.finditer(data)]
    for i, tok in enumerate(tokens):
        if tok in (b"{", b"["):
            depth += 1
            closing = b"}" if tok == b"{" else b"]"
            nxt = tokens[i + 1] if i + 1 < len(tokens) else b""
            out.append(tok if nxt == closing else tok + b"\n" + b" " * (indent * depth))
        elif tok in (b"}", b"]"):
            depth -= 1
            prev = tokens[i - 1] if i else b""
            out.append(tok if prev in (b"{", b"[") else b"\n" + b" " * (indent * depth) + tok)
        elif tok == b",":
            out.append(b",\n" + b" " * (indent * depth))
        elif tok == b":":
            out.append(b": ")
        else:
            out.append(tok)
    return b"".join(out) + b"\n"


def dumps(document: Any) -> bytes:
    """Serialise a JSON document (Decimal kept as written; `orjson.Fragment` embedded as-is)."""
    return json_dumps(document)


class FhirResponse(Response):
    """A FHIR JSON response whose body is given as ready bytes (or a dict to serialise)."""

    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes):
            return content
        return dumps(content)


def fhir_response(
    request: Request,
    content: bytes | Mapping[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A response in the negotiated format (`request.state.output_format`), pretty if asked."""
    fmt: OutputFormat = getattr(request.state, "output_format", None) or negotiate(request)
    body = content if isinstance(content, bytes) else dumps(content)
    if fmt.pretty:
        body = reindent(body)
    return FhirResponse(body, status_code=status, headers=dict(headers or {}), media_type=fmt.media_type)
