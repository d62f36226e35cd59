"""The DICOMweb fast path against real servers: nginx (tests/nginx_server.py, the production
locations template) -> the exchange's gate (`auth_request`, uvicorn on loopback) -> Orthanc
(tests/orthanc_server.py), with PostgreSQL and a local token issuer.

Between nginx and Orthanc sits a recording TCP pump, so the test sees exactly what nginx sent to
Orthanc (the Authorization header must be the exchange's Orthanc account, never the caller's).
Residents as in test_orthanc_imaging.py (tests/auth_world.py): A (MRN A001 at TTWSY, referred
to QYRMYY with consent), B (MRN B001 at QYRMYY, no referral); the caller is a QYRMYY specialist.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from pydicom.uid import generate_uid

from ehr_store import Store, json_loads
from hie_server.app import create_app
from hie_server.auth import AuthSettings
from hie_server.operations.imaging import imaging_router
from hie_server.settings import HieSettings
from imaging import study_resource_id

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS / "integration"))
import nginx_server  # noqa: E402
import test_orthanc_imaging as shared  # noqa: E402  (its fixtures and helpers)
from orthanc_server import OrthancServer  # noqa: E402
from test_orthanc_imaging import SPECIALIST, client_of, imaging_settings  # noqa: E402

# the Orthanc, PostgreSQL store, bridge and token issuer fixtures of the Orthanc tests
orthanc, store, bridge, local_issuer = shared.orthanc, shared.store, shared.bridge, shared.local_issuer
service_unavailable = shared.service_unavailable

MULTIPART_DICOM = 'multipart/related; type="application/dicom"'


@dataclass
class RecordingPump:
    """A TCP pump to Orthanc that keeps every byte nginx sent it (request heads included)."""

    upstream_port: int
    listener: socket.socket = field(default_factory=lambda: socket.create_server(("127.0.0.1", 0)))
    sent: bytearray = field(default_factory=bytearray)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def start(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        try:
            while data := source.recv(1 << 16):
                if record:
                    with self.lock:
                        self.sent += data
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()


@dataclass
class FastPath:
    nginx: nginx_server.NginxServer
    exchange_url: str
    pump: RecordingPump
    app: Any
    issuer: Any

    def token(self, claims: dict[str, Any]) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.token(**claims)}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def fast_path(store: Store, orthanc: OrthancServer, local_issuer: Any) -> Iterator[FastPath]:
    secret = secrets.token_urlsafe(24)
    settings = HieSettings(
        auth=AuthSettings(issuer=local_issuer.issuer, jwks_min_refresh_seconds=0, facts_cache_seconds=0),
        imaging=imaging_settings(orthanc).model_copy(update={"gate_secret": SecretStr(secret)}),
    )
    app = create_app(settings, store, root_routers=[imaging_router(settings, store, client_of(orthanc))])
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the exchange did not start"
        time.sleep(0.05)
    pump = RecordingPump(orthanc.http_port)
    pump.start()
    try:
        nginx = nginx_server.start_nginx(port, pump.port, secret, (orthanc.username, orthanc.password))
    except nginx_server.NginxUnavailable as exc:
        server.should_exit = True
        thread.join(10)
        pump.close()
        service_unavailable(f"nginx could not be started: {exc}")
        raise
    try:
        yield FastPath(nginx, f"http://127.0.0.1:{port}", pump, app, local_issuer)
    finally:
        nginx_server.stop_nginx(nginx)
        server.should_exit = True
        thread.join(10)
        pump.close()


def raw_get(port: int, target: str, headers: dict[str, str]) -> bytes:
    """One GET with the request target exactly as given (httpx would remove dot segments)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{head}\r\n".encode())
        answer = b""
        while data := conn.recv(1 << 16):
            answer += data
    return answer


def dicom_parts(response: httpx.Response) -> list[bytes]:
    """The bodies of a multipart/related answer (boundaries differ per answer), sorted."""
    params = dict(
        p.strip().split("=", 1) for p in response.headers["content-type"].split(";")[1:] if "=" in p
    )
    boundary = params["boundary"].strip('"').encode()
    out = []
    for part in response.content.split(b"--" + boundary)[1:]:
        if part.startswith(b"--"):
            break
        out.append(part.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n"))
    return sorted(out)


def audit_events(opened: Store) -> list[dict[str, Any]]:
    with opened.unit_of_work() as uow:
        found = uow.resources.search("AuditEvent", [("_count", "500")]).matches
    return [json_loads(m.content) for m in found]


async def test_nginx_fast_path_applies_the_exchanges_rules(orthanc, store, bridge, fast_path, tmp_path):
    two = await shared.upload_two_studies(orthanc, bridge, tmp_path)
    a_study, a_series, a_sop, b_study = two.a_study, two.a_series, two.a_sop, two.b_study
    spec = fast_path.token(SPECIALIST)
    auth = (orthanc.username, orthanc.password)
    async with httpx.AsyncClient(base_url=fast_path.nginx.url, timeout=30) as web:
        # no consultation for B: refused by the exchange's rule, no DICOM bytes, an OperationOutcome
        r = await web.get(f"/dicom-web/studies/{b_study}", headers={**spec, "Accept": MULTIPART_DICOM})
        assert r.status_code == 403, (r.status_code, r.text, fast_path.nginx.log_tail())
        assert r.headers["content-type"] == "application/fhir+json"
        assert r.json()["resourceType"] == "OperationOutcome" and "specialist-needs-referral" in r.text
        assert b"DICM" not in r.content
        wado_b = f"/wado?requestType=WADO&studyUID={b_study}&contentType=application/dicom"
        assert (await web.get(wado_b, headers=spec)).status_code == 403

        # the gate and Orthanc read the same study out of a URI: dot segments, repeated UIDs
        raw = await asyncio.to_thread(
            raw_get, fast_path.nginx.port, f"/dicom-web/studies/{a_study}/../../studies/{b_study}", spec
        )
        assert raw.startswith(b"HTTP/1.1 403") and b"DICM" not in raw
        twice = f"/wado?requestType=WADO&studyUID={b_study}&studyUID={a_study}&contentType=application/dicom"
        r = await web.get(twice, headers=spec)
        assert (
            r.status_code == 400
            and b"DICM" not in r.content
            and r.json()["resourceType"] == "OperationOutcome"
        )

        # unauthenticated: 401 with the Bearer challenge, nothing from Orthanc
        r = await web.get(f"/dicom-web/studies/{a_study}", headers={"Accept": MULTIPART_DICOM})
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["resourceType"] == "OperationOutcome" and b"DICM" not in r.content

        # A (referred, consented): the study's bytes, identical to Orthanc's own answer
        mark = len(fast_path.pump.sent)
        r = await web.get(f"/dicom-web/studies/{a_study}", headers={**spec, "Accept": MULTIPART_DICOM})
        assert r.status_code == 200 and "content-encoding" not in r.headers
        direct = httpx.get(
            f"{orthanc.url}/dicom-web/studies/{a_study}", auth=auth, headers={"Accept": MULTIPART_DICOM}
        )
        assert dicom_parts(r) == dicom_parts(direct) and len(dicom_parts(r)) == 1
        # written out: Orthanc 1.10 does not URL-decode query arguments (application%2Fdicom)
        wado_a = f"/wado?requestType=WADO&studyUID={a_study}&seriesUID={a_series}&objectUID={a_sop}"
        wado_a += "&contentType=application/dicom"
        r = await web.get(wado_a, headers=spec)
        direct = httpx.get(f"{orthanc.url}{wado_a}", auth=auth)
        assert r.status_code == 200 and r.content == direct.content and r.content[128:132] == b"DICM"
        frames = await web.get(
            f"/dicom-web/studies/{a_study}/series/{a_series}/instances/{a_sop}/frames/1",
            headers={**spec, "Accept": "multipart/related; type=application/octet-stream"},
        )
        assert frames.status_code == 200 and len(frames.content) >= 32 * 32

        # what nginx sent Orthanc: the service's Basic credentials, never the caller's token,
        # and the exchange's address in Forwarded
        to_orthanc = bytes(fast_path.pump.sent[mark:]).decode("latin-1")
        heads = [h for h in to_orthanc.split("\r\n\r\n") if h.startswith("GET ")]
        assert len(heads) == 3
        basic = nginx_server.basic_authorization(*auth)
        host = fast_path.nginx.url.removeprefix("http://")
        for head in heads:
            lines = head.lower().split("\r\n")
            assert [x for x in lines if x.startswith("authorization:")] == [f"authorization: {basic}".lower()]
            assert f"forwarded: host={host};proto=http" in lines
        assert "bearer" not in to_orthanc.lower() and SPECIALIST["preferred_username"] not in to_orthanc

        # QIDO-RS and metadata stay on the exchange's routes: filtered per resident
        r = await web.get("/dicom-web/studies", params={"PatientID": "B001"}, headers=spec)
        assert r.status_code == 200 and r.json() == []
        r = await web.get(f"/dicom-web/studies/{a_study}/metadata", headers=spec)
        assert r.status_code == 200 and r.json()[0]["00100020"]["Value"] == ["A001"]
        assert len(fast_path.pump.sent) == mark + len(to_orthanc.encode("latin-1"))  # not via nginx

        # the internal endpoint: not reachable through nginx, refused without the secret
        assert (await web.get("/_internal/dicomweb-auth", headers=spec)).status_code == 404
    r = httpx.get(
        f"{fast_path.exchange_url}/_internal/dicomweb-auth",
        headers={**spec, "X-Original-URI": f"/dicom-web/studies/{a_study}", "X-Hie-Gate-Secret": "guess"},
    )
    assert r.status_code == 403 and "dicomweb-gate-secret" in r.text

    # the same AuditEvents as the exchange's own routes: the refusal and the allowed retrieval
    fast_path.app.state.audit_writer.flush()
    events = audit_events(store)

    def about(study: str) -> list[dict[str, Any]]:
        return [e for e in events if f"ImagingStudy/{study_resource_id(study)}" in json.dumps(e)]

    refused = about(b_study)
    assert len(refused) == 3 and all(e["outcome"] == "4" for e in refused)  # WADO-RS, dot segments, WADO-URI
    assert all("specialist-needs-referral" in json.dumps(e) for e in refused)
    assert all(e["agent"][0]["network"]["address"] == "127.0.0.1" for e in refused)
    assert any(e["outcomeDesc"].startswith("HTTP 401") and e["outcome"] == "4" for e in events)
    allowed = [e for e in about(a_study) if e["outcome"] == "0"]
    assert len(allowed) >= 4  # study, WADO-URI, frames (gate) and the metadata (the exchange's route)
    assert all("Patient/TTWSY-A" in json.dumps(e) or "Patient/QYRMYY-A" in json.dumps(e) for e in allowed)


async def test_nginx_sends_uploads_to_the_exchange(orthanc, store, fast_path):
    """STOW-RS (POST) on a bulk-looking path is not decided by the gate: the exchange's route
    checks the upload (here: an empty body is refused by the exchange, not by nginx)."""
    spec = fast_path.token(SPECIALIST)
    async with httpx.AsyncClient(base_url=fast_path.nginx.url, timeout=30) as web:
        r = await web.post(
            f"/dicom-web/studies/{generate_uid()}",
            headers={**spec, "Content-Type": "multipart/related; type=application/dicom; boundary=x"},
            content=b"--x--\r\n",
        )
    assert r.status_code in (400, 403, 422) and r.headers["content-type"] == "application/fhir+json"
    assert "OperationOutcome" in r.text and "nginx" not in r.text
