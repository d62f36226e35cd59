"""The one module that talks to Orthanc (REST API and its DICOMweb plugin), through `pyorthanc`.

`OrthancClient` wraps `pyorthanc.AsyncOrthanc` (an `httpx.AsyncClient`) with the calls the
bridge, the uploader, the exporter and the DICOMweb proxy need, and turns transport failures
into domain errors: Orthanc unreachable or failing -> `Unavailable`; a refused DICOM file ->
`InvalidInput`; an unknown resource -> `NotFound`.

The proxied DICOMweb and viewer requests (`open`) go through an `aiohttp` session instead: its
C parser hands over whatever the socket delivered (up to 256 KiB at a time, gathered by the
kernel for multipart answers: `_gather_reads`) without copying it through h11's buffers,
which halved the exchange's CPU per relayed byte (bench_imaging). The session asks Orthanc
for `Accept-Encoding: identity`, so relayed bytes are never compressed behind a dropped
`Content-Encoding` header.

Orthanc 1.10 (Debian) never URL-decodes GET query arguments, so `qido` sends only values made
of safe ASCII characters (`SAFE_QUERY_VALUE`) and repeats `includefield`; searches by name go
through `find` (`POST /tools/find`, a JSON body, so any character set works).

May import: pyorthanc, httpx, aiohttp, `ehr_store` (error kinds).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import socket
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
from multidict import CIMultiDictProxy
from pyorthanc import AsyncOrthanc
from yarl import URL

from ehr_store import InvalidInput, NotFound, Unavailable

Json = dict[str, Any]
SAFE_QUERY_VALUE = re.compile(r"^[A-Za-z0-9.\-_/]*$")
"""Query values Orthanc 1.10 matches correctly without URL-decoding."""
READ_BUFFER_BYTES = 1 << 20
"""How much of an answer the relay buffers before it stops reading from Orthanc."""
SOP_CLASS_CALLS = 16
"""Up to this many instances of unknown SOP class are asked one by one, more by QIDO-RS."""
READ_LOW_WATER = 256 << 10
"""Bytes the kernel gathers before it wakes the relay on an answer that ends at the close
(`SO_RCVLOWAT`); asyncio reads at most 256 KiB per wake-up anyway."""


@dataclass(frozen=True)
class Change:
    """One entry of Orthanc's `/changes` feed (Orthanc REST API, "Tracking changes")."""

    seq: int
    change_type: str
    resource_type: str
    orthanc_id: str


@dataclass(frozen=True)
class ChangesPage:
    """A page of `/changes`: the changes, the last sequence number seen, and whether drained."""

    changes: list[Change]
    last: int
    done: bool


class Upstream:
    """An answer of Orthanc not yet read (see `OrthancClient.open`): `status_code`, `headers`
    (case-insensitive); read it with `aiter_raw()` or `aread()`, then `aclose()`."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status_code: int = response.status
        self.headers: CIMultiDictProxy[str] = response.headers

    async def aiter_raw(self) -> AsyncGenerator[bytes, None]:
        """The body as it arrives (chunks of any size up to `READ_BUFFER_BYTES`), undecoded;
        released at the end. Raises: Unavailable (Orthanc broke off)."""
        _gather_reads(self._response)
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise Unavailable(f"Orthanc broke off its answer: {type(exc).__name__}") from exc
        finally:
            self._response.release()

    async def aread(self) -> bytes:
        """The whole body. Raises: Unavailable."""
        try:
            return await self._response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise Unavailable(f"Orthanc broke off its answer: {type(exc).__name__}") from exc

    async def aclose(self) -> None:
        """Give the connection back (or drop it when the body was not read to the end)."""
        self._response.release()


def _gather_reads(response: aiohttp.ClientResponse) -> None:
    """On an answer whose end is the close of its connection (HTTP/1.1 `Connection: close`, no
    Content-Length, not chunked: RFC 9112 §6.3; Orthanc's multipart WADO-RS answers), have the
    kernel wake us only once `READ_LOW_WATER` bytes wait in the socket (`SO_RCVLOWAT`,
    socket(7)) instead of at every burst of segments: a third of the wake-ups, reads and
    chunks to relay for a study; ~2.5 ms less CPU per 31.6 MB study on a busy machine, no
    measurable change on an idle one (docs/imaging.md). The close
    wakes the reader whatever is left, and such a connection is never reused, so nothing waits
    for data that will not come; a stalled Orthanc still meets the read timeout."""
    headers = response.headers
    if (
        headers.get("Connection", "").lower() != "close"
        or "Content-Length" in headers
        or "Transfer-Encoding" in headers
        or response.connection is None
        or response.connection.transport is None
        or not hasattr(socket, "SO_RCVLOWAT")
    ):
        return
    sock = response.connection.transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, READ_LOW_WATER)


class OrthancClient:
    """Async client of one Orthanc. Use as `async with OrthancClient(...) as client:`."""

    def __init__(
        self, url: str, username: str | None, password: str | None, timeout_seconds: float = 60.0
    ) -> None:
        self.url = url.rstrip("/")
        self._relay_headers = {"Accept-Encoding": "identity"}
        if username:
            self._relay_headers["Authorization"] = "Basic " + base64.b64encode(
                f"{username}:{password or ''}".encode()
            ).decode("ascii")
        self._timeout = aiohttp.ClientTimeout(sock_connect=5.0, sock_read=timeout_seconds)
        self._relay: aiohttp.ClientSession | None = None
        self._relay_loop: asyncio.AbstractEventLoop | None = None
        self._api = AsyncOrthanc(
            self.url,
            username=username,
            password=password,
            timeout=httpx.Timeout(timeout_seconds, connect=5.0),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )

    async def __aenter__(self) -> OrthancClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pools."""
        await self._api.aclose()
        if self._relay is not None and self._relay_loop is asyncio.get_running_loop():
            await self._relay.close()
        self._relay = None

    def _session(self) -> aiohttp.ClientSession:
        """The relay session of the running loop (a test client may run the app in a loop of
        its own; a session is bound to the loop that made it)."""
        loop = asyncio.get_running_loop()
        if self._relay is None or self._relay.closed or self._relay_loop is not loop:
            self._relay_loop = loop
            self._relay = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=32, keepalive_timeout=30),
                read_bufsize=READ_BUFFER_BYTES,
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
                headers=self._relay_headers,
            )
        return self._relay

    # -- plain REST -------------------------------------------------------------------------
    async def _json(self, method: str, path: str, **kw: Any) -> Any:
        try:
            response = await self._api.request(method, f"{self.url}{path}", **kw)
        except httpx.HTTPError as exc:
            raise Unavailable(f"Orthanc at {self.url} is unreachable: {type(exc).__name__}") from exc
        if response.status_code == 404:
            raise NotFound(f"Orthanc has no {path}")
        if response.status_code == 400:
            raise InvalidInput(f"Orthanc refused {method} {path}: {_orthanc_message(response)}")
        if response.status_code >= 300:
            raise Unavailable(f"Orthanc answered {response.status_code} to {method} {path}")
        return response.json() if response.content else None

    async def system(self) -> Json:
        """`GET /system` (name, version, API version). Raises: Unavailable."""
        return dict(await self._json("GET", "/system"))

    async def changes(self, since: int, limit: int) -> ChangesPage:
        """`GET /changes?since=&limit=`: changes after sequence number `since`. Raises: Unavailable."""
        body = await self._json("GET", "/changes", params={"since": str(since), "limit": str(limit)})
        changes = [
            Change(int(c["Seq"]), str(c["ChangeType"]), str(c["ResourceType"]), str(c["ID"]))
            for c in body.get("Changes", [])
        ]
        return ChangesPage(changes, int(body.get("Last", since)), bool(body.get("Done", True)))

    async def last_change(self) -> int:
        """The newest sequence number of `/changes` (0 when empty)."""
        body = await self._json("GET", "/changes", params={"last": ""})
        return int(body.get("Last", 0))

    async def study(self, orthanc_id: str) -> Json:
        """`GET /studies/{id}` with its series expanded under `"SeriesDetails"`, its instances
        (Orthanc's expanded list: ID, ParentSeries, SOPInstanceUID, InstanceNumber) under
        `"InstanceDetails"` and the full tags of one instance under `"InstanceTags"` (for
        IssuerOfPatientID, OtherPatientIDs, SpecificCharacterSet); the bridge adds
        `"SopClasses"` (`sop_classes`). Raises: NotFound, Unavailable."""
        study = dict(await self._json("GET", f"/studies/{orthanc_id}"))
        study["SeriesDetails"] = await self._json(
            "GET", f"/studies/{orthanc_id}/series", params={"expand": ""}
        )
        instances = await self._json("GET", f"/studies/{orthanc_id}/instances")
        study["InstanceDetails"] = instances
        study["InstanceTags"] = (
            await self._json("GET", f"/instances/{instances[0]['ID']}/simplified-tags") if instances else {}
        )
        return study

    async def sop_classes(self, study: Json, known: Mapping[str, str]) -> dict[str, str]:
        """{SOPInstanceUID: SOPClassUID} of `study["InstanceDetails"]`. Orthanc 1.10 keeps the
        SOP class in each instance's metadata (`SopClassUid`), not in its main DICOM tags, so
        `known` ones (from the ImagingStudy indexed before) are reused and only the others are
        asked for: one `GET /instances/{id}/metadata/SopClassUid` each (an index lookup, no file
        read) when there are up to `SOP_CLASS_CALLS`, else one QIDO-RS instance query per series
        (DICOM PS3.18 §10.6; Orthanc reads the files: ~0.3 ms per 256 KiB instance). An instance
        deleted meanwhile is absent. Raises: Unavailable."""
        out: dict[str, str] = {}
        missing: list[tuple[str, str, str]] = []  # (SOPInstanceUID, Orthanc id, Orthanc series id)
        for i in study.get("InstanceDetails") or []:
            uid = str(i.get("MainDicomTags", {}).get("SOPInstanceUID", ""))
            if uid in known:
                out[uid] = known[uid]
            elif uid:
                missing.append((uid, str(i["ID"]), str(i.get("ParentSeries", ""))))
        if len(missing) > SOP_CLASS_CALLS:
            series_uids = {
                str(s.get("ID")): str(s.get("MainDicomTags", {}).get("SeriesInstanceUID", ""))
                for s in study.get("SeriesDetails") or []
            }
            study_uid = str(study.get("MainDicomTags", {}).get("StudyInstanceUID", ""))
            for series in sorted({series_uids.get(m[2], "") for m in missing} - {""}):
                path = f"/dicom-web/studies/{study_uid}/series/{series}/instances"
                for hit in await self.qido(path, [("includefield", "00080016")], {}):
                    sop, cls = (
                        str((hit.get(t) or {}).get("Value", [""])[0]) for t in ("00080018", "00080016")
                    )
                    if sop and cls:
                        out[sop] = cls
            missing = [m for m in missing if m[0] not in out]
        gate = asyncio.Semaphore(8)

        async def one(orthanc_id: str) -> str | None:
            async with gate:
                return await self._metadata(orthanc_id, "SopClassUid")

        found = await asyncio.gather(*(one(m[1]) for m in missing))
        out.update({m[0]: cls for m, cls in zip(missing, found, strict=True) if cls})
        return out

    async def _metadata(self, orthanc_id: str, name: str) -> str | None:
        """`GET /instances/{id}/metadata/{name}` (text), None when the instance or the entry is
        gone; through the aiohttp session (a third of httpx's client CPU per call).
        Raises: Unavailable."""
        answer = await self.open("GET", f"/instances/{orthanc_id}/metadata/{name}")
        try:
            body = await answer.aread()
        finally:
            await answer.aclose()
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise Unavailable(f"Orthanc answered {answer.status_code} for metadata of {orthanc_id}")
        return body.decode("ascii", "replace").strip() or None

    async def study_instances(self, orthanc_id: str) -> list[str]:
        """Orthanc ids of a study's instances. Raises: NotFound, Unavailable."""
        return [str(i["ID"]) for i in await self._json("GET", f"/studies/{orthanc_id}/instances")]

    async def study_instance_index(self, orthanc_id: str) -> list[tuple[str, str]]:
        """(instance id, series id) of each instance of a study. Raises: NotFound, Unavailable."""
        found = await self._json("GET", f"/studies/{orthanc_id}/instances")
        return [(str(i["ID"]), str(i.get("ParentSeries", ""))) for i in found]

    async def study_series(self, orthanc_id: str) -> list[tuple[str, str]]:
        """(Orthanc series id, SeriesInstanceUID) of a study's series, by SeriesNumber.
        Raises: NotFound, Unavailable."""
        found = await self._json("GET", f"/studies/{orthanc_id}/series", params={"expand": ""})

        def number(s: Json) -> tuple[int, str]:
            value = str(s.get("MainDicomTags", {}).get("SeriesNumber", "")).strip()
            return (int(value) if value.lstrip("-").isdigit() else 1 << 30, str(s["ID"]))

        return [
            (str(s["ID"]), str(s.get("MainDicomTags", {}).get("SeriesInstanceUID", "")))
            for s in sorted(found, key=number)
        ]

    async def lookup_study(self, study_uid: str) -> str | None:
        """Orthanc id of the study with this StudyInstanceUID (`POST /tools/lookup`), or None."""
        for hit in await self._json("POST", "/tools/lookup", content=study_uid.encode("ascii")):
            if hit.get("Type") == "Study":
                return str(hit["ID"])
        return None

    async def find(self, level: str, query: Mapping[str, str], *, limit: int = 100) -> list[Json]:
        """`POST /tools/find` (expanded): resources at `level` (Patient/Study/Series/Instance)
        whose main DICOM tags match `query` (DICOM wildcards `*` `?`, any character set).
        Raises: InvalidInput (bad query), Unavailable."""
        body = {"Level": level, "Query": dict(query), "Expand": True, "Limit": limit}
        return list(await self._json("POST", "/tools/find", json=body))

    async def existing_studies(self, study_uids: Sequence[str]) -> set[str]:
        """Which of these StudyInstanceUIDs Orthanc holds: one `POST /tools/find` with UID list
        matching (values joined by `\\`, DICOM PS3.4 §C.2.2.2.2). Raises: Unavailable."""
        if not study_uids:
            return set()
        query = {"StudyInstanceUID": "\\".join(study_uids)}
        found = await self.find("Study", query, limit=len(study_uids) + 1)
        return {str(h.get("MainDicomTags", {}).get("StudyInstanceUID", "")) for h in found}

    async def upload(self, dicom: bytes) -> Json:
        """`POST /instances` one DICOM file. Returns Orthanc's answer (`ID`, `ParentStudy`,
        `Status` Success/AlreadyStored). Raises: InvalidInput (not DICOM), Unavailable."""
        return dict(await self._json("POST", "/instances", content=dicom))

    async def instance_file(self, orthanc_id: str) -> bytes:
        """The stored DICOM file of an instance. Raises: NotFound, Unavailable."""
        try:
            response = await self._api.get(f"{self.url}/instances/{orthanc_id}/file")
        except httpx.HTTPError as exc:
            raise Unavailable(f"Orthanc at {self.url} is unreachable: {type(exc).__name__}") from exc
        if response.status_code == 404:
            raise NotFound(f"Orthanc has no instance {orthanc_id}")
        if response.status_code != 200:
            raise Unavailable(f"Orthanc answered {response.status_code} for instance {orthanc_id}")
        content: bytes = response.content
        return content

    # -- DICOMweb (proxied) -------------------------------------------------------------------
    async def open(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> Upstream:
        """Send a request to `path` and return the answer *unread* (streaming): the caller
        iterates `aiter_raw()` or calls `aread()`, and must `aclose()` it. Query values must
        match `SAFE_QUERY_VALUE` (Orthanc 1.10 does not URL-decode them).
        Raises: InvalidInput (unsafe query value), Unavailable."""
        for key, value in query:
            if not SAFE_QUERY_VALUE.match(key) or not SAFE_QUERY_VALUE.match(value):
                raise InvalidInput(f"query parameter {key} has characters Orthanc cannot match")
        url = f"{self.url}{path}" + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
        try:
            response = await self._session().request(
                method, URL(url, encoded=True), headers=dict(headers or {}), data=content
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise Unavailable(f"Orthanc at {self.url} is unreachable: {type(exc).__name__}") from exc
        return Upstream(response)

    async def qido(
        self, path: str, query: Sequence[tuple[str, str]], headers: Mapping[str, str]
    ) -> list[Json]:
        """A QIDO-RS search read whole (answers are small JSON arrays). Raises: Unavailable."""
        response = await self.open("GET", path, query, {**headers, "Accept": "application/dicom+json"})
        try:
            body = await response.aread()
        finally:
            await response.aclose()
        if response.status_code == 204 or not body.strip():
            return []
        if response.status_code != 200:
            raise Unavailable(f"Orthanc answered {response.status_code} to QIDO-RS {path}")
        return list(json.loads(body))


def _orthanc_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("Details") or body.get("Message") or body)[:200] if isinstance(body, dict) else ""
