"""The workbench's only way to the data: the exchange's own HTTP API, called in-process with the
signed-in user's access token (`Authorization: Bearer …`), so every page goes through the same
token check, access rules, filtering and AuditEvents as any other API client — no side door.

`Api(app, session, client_address)` sends requests through the whole ASGI app (middleware
included) with httpx's ASGI transport; nothing leaves the process.

May import: httpx, orjson, `ehr_store` (error kinds), `hie_server.web.*`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import orjson
from starlette.types import ASGIApp

from hie_server.web.session import Session

Json = dict[str, Any]
FHIR_JSON = "application/fhir+json"


class ApiError(Exception):
    """A non-2xx answer: `status` and the OperationOutcome's diagnostics (or the body's start)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def _message(response: httpx.Response) -> str:
    try:
        doc = response.json()
    except ValueError:
        return response.text[:300]
    issues = doc.get("issue", []) if isinstance(doc, dict) else []
    texts = [str(i.get("diagnostics") or i.get("code", "")) for i in issues]
    return "; ".join(t for t in texts if t) or response.text[:300]


def param(name: str, value: Any) -> Json:
    """One FHIR Parameters entry, typed by the Python value (Reference for `Type/id` strings
    given as `{"reference": …}`)."""
    if isinstance(value, dict):
        return {"name": name, "valueReference": value}
    if isinstance(value, bool):
        return {"name": name, "valueBoolean": value}
    if isinstance(value, int):
        return {"name": name, "valueInteger": value}
    return {"name": name, "valueString": str(value)}


class Api:
    """FHIR API client for one request of one session. `base`: the FHIR base path (`/fhir`)."""

    def __init__(self, app: ASGIApp, session: Session, base: str, client_address: str = "127.0.0.1") -> None:
        self.session = session
        self.base = base.rstrip("/")
        transport = httpx.ASGITransport(app=app, client=(client_address, 0))
        headers = {"Accept": FHIR_JSON, "X-Workbench": "1"}
        if session.tokens is not None:
            headers["Authorization"] = f"Bearer {session.tokens.access_token}"
        self.client = httpx.AsyncClient(
            transport=transport, base_url="http://workbench.local", headers=headers, timeout=60.0
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def raw(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        body: Json | None = None,
        absolute: bool = False,
        accept: str | None = None,
    ) -> httpx.Response:
        """Any request; `path` relative to the FHIR base unless `absolute`; `accept` replaces the
        FHIR JSON Accept header (DICOMweb). Raises: ApiError."""
        url = path if absolute else f"{self.base}/{path.lstrip('/')}"
        content = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": FHIR_JSON} if content is not None else {}
        if accept:
            headers["Accept"] = accept
        response = await self.client.request(
            method, url, params=list(params or []), content=content, headers=headers
        )
        if response.status_code >= 400:
            raise ApiError(response.status_code, _message(response))
        return response

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Json:
        """GET a JSON document; None values are left out, list values repeat the parameter.
        Raises: ApiError."""
        pairs = [
            (k, str(x))
            for k, v in (params or {}).items()
            if v is not None and v != ""
            for x in (v if isinstance(v, list | tuple) else [v])
        ]
        doc: Json = (await self.raw("GET", path, params=pairs)).json()
        return doc

    async def search(self, path: str, params: dict[str, Any] | None = None) -> list[Json]:
        """The resources of a searchset Bundle's first page (matches and includes)."""
        bundle = await self.get(path, params)
        return [e["resource"] for e in bundle.get("entry", []) if isinstance(e.get("resource"), dict)]

    async def operation(self, path: str, *parameters: Json) -> Json:
        """POST a Parameters body to an operation. Raises: ApiError."""
        body = {"resourceType": "Parameters", "parameter": list(parameters)}
        doc: Json = (await self.raw("POST", path, body=body)).json()
        return doc

    async def create(self, resource: Json) -> Json:
        """POST a resource (FHIR create). Raises: ApiError."""
        doc: Json = (await self.raw("POST", str(resource["resourceType"]), body=resource)).json()
        return doc
