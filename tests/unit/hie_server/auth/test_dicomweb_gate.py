"""The DICOMweb gate's own path (`GET /_internal/dicomweb-auth`, hie_server/operations/
dicomweb_gate.py) without nginx or Orthanc: a local issuer, a memory store, the app in-process.

What the latency work must not change: a token the gate verified before is reused only while
verifying it again would accept it (not after its `exp`, not after the issuer's keys changed);
every decision, allowed or refused, is one AuditEvent, queued once the answer is sent, also when
sending fails; a new ImagingStudy version is read anew (`ClaimsMemo` is per version).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from starlette.responses import Response

from ehr_store import MemoryStore
from hie_server.app import create_app
from hie_server.auth import AuthSettings
from hie_server.operations.dicomweb_gate import AuditedAnswer, verified_tokens
from hie_server.operations.imaging import imaging_router
from hie_server.settings import HieSettings
from imaging import DICOM_UID_SYSTEM, ImagingSettings, OrthancClient, study_resource_id

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from auth_world import seed

SECRET = "gate-secret-for-tests"
UID = "1.2.826.0.1.3680043.8.498.777"
DOCTOR = {
    "preferred_username": "doctor.ttwsy",
    "realm_access": {"roles": ["township-doctor"]},
    "facility": "TTWSY",
}
STRANGER = {**DOCTOR, "preferred_username": "doctor.other", "facility": "QYZXYY", "sub": "u-other"}


def imaging_study(subject: str) -> dict[str, Any]:
    return {
        "resourceType": "ImagingStudy",
        "id": study_resource_id(UID),
        "status": "available",
        "identifier": [{"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{UID}"}],
        "subject": {"reference": subject},
    }


@pytest.fixture
def gate(local_issuer: Any) -> Iterator[tuple[TestClient, Any]]:
    store = MemoryStore()
    seed(store)
    with store.unit_of_work(write=True) as uow:
        uow.resources.update("ImagingStudy", study_resource_id(UID), imaging_study("Patient/TTWSY-A"))
        uow.commit()
    settings = HieSettings(
        auth=AuthSettings(issuer=local_issuer.issuer, jwks_min_refresh_seconds=0, clock_skew_seconds=0),
        imaging=ImagingSettings(orthanc_url="http://127.0.0.1:9", gate_secret=SecretStr(SECRET)),
    )
    client = OrthancClient("http://127.0.0.1:9", None, None)  # never asked: the gate only decides
    app = create_app(settings, store, root_routers=[imaging_router(settings, store, client)])
    with TestClient(app, raise_server_exceptions=False) as web:
        yield web, app
    app.state.audit_writer.close()


def ask(web: TestClient, token: str | None) -> Any:
    headers = {"X-Original-URI": f"/dicom-web/studies/{UID}", "X-Hie-Gate-Secret": SECRET}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return web.get("/_internal/dicomweb-auth", headers=headers)


def gate_events(app: Any) -> list[dict[str, Any]]:
    app.state.audit_writer.flush()
    with app.state.audit_writer.store.unit_of_work() as uow:
        found = uow.resources.search("AuditEvent", [("_count", "100")]).matches
    return [json.loads(m.content) for m in found]


def counting(verifier: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every full verification the verifier does."""
    calls: list[str] = []
    verify = verifier.verify

    def wrapped(token: str) -> Any:
        calls.append(token)
        return verify(token)

    monkeypatch.setattr(verifier, "verify", wrapped)
    return calls


def test_a_verified_token_is_reused_until_the_keys_change(
    gate: tuple[TestClient, Any], local_issuer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    web, app = gate
    calls = counting(app.state.token_verifier, monkeypatch)
    token = local_issuer.token(**DOCTOR)
    assert [ask(web, token).status_code for _ in range(3)] == [204, 204, 204]
    assert len(calls) == 1 and verified_tokens(app.state.token_verifier).get(token) is not None
    assert ask(web, local_issuer.token(**STRANGER)).status_code == 403  # another token: verified, refused
    assert len(calls) == 2

    local_issuer.rotate()  # the old key leaves the JWKS; a token of the new key makes the verifier refetch
    assert ask(web, local_issuer.token(**DOCTOR)).status_code == 204
    refused = ask(web, token)  # the earlier token is verified again, against the new keys
    assert refused.status_code == 401 and "unknown key" in refused.headers["x-hie-outcome"]
    assert len(calls) == 4 and verified_tokens(app.state.token_verifier).get(token) is None


def test_a_verified_token_is_not_reused_after_it_expires(
    gate: tuple[TestClient, Any], local_issuer: Any
) -> None:
    web, _app = gate
    exp = int(time.time()) + 3  # 2-3 s ahead: time for the first decision and its key fetch when busy
    token = local_issuer.token(**DOCTOR, exp=exp)
    assert ask(web, token).status_code == 204
    time.sleep(max(0.0, exp + 0.05 - time.time()))  # past exp (no clock skew here)
    answer = ask(web, token)
    assert answer.status_code == 401 and "expired" in answer.headers["x-hie-outcome"]


def test_every_decision_is_one_audit_event_and_a_new_version_is_read(
    gate: tuple[TestClient, Any], local_issuer: Any
) -> None:
    web, app = gate
    doctor, stranger = local_issuer.token(**DOCTOR), local_issuer.token(**STRANGER)
    first = ask(web, doctor)
    assert first.status_code == 204
    assert first.headers["x-hie-study-version"] == f"ImagingStudy/{study_resource_id(UID)}/_history/1"
    assert ask(web, stranger).status_code == 403 and ask(web, None).status_code == 401
    store = app.state.audit_writer.store
    with store.unit_of_work(write=True) as uow:  # relinked to a resident of another facility
        uow.resources.update("ImagingStudy", study_resource_id(UID), imaging_study("Patient/QYRMYY-X"))
        uow.commit()
    moved = ask(web, doctor)  # version 2 is read, not the memo of version 1
    assert moved.status_code == 403 and "x-hie-study-version" not in moved.headers
    events = gate_events(app)  # the gate's only: nothing else was asked of this app
    assert sorted(e["outcome"] for e in events) == ["0", "4", "4", "4"]
    assert sum(f"ImagingStudy/{study_resource_id(UID)}" in json.dumps(e) for e in events) == 3


def test_the_audit_event_is_queued_even_when_sending_fails() -> None:
    queued: list[int] = []

    async def broken_send(message: Any) -> None:
        raise OSError("client gone")

    async def receive() -> Any:
        return {"type": "http.disconnect"}

    answer = AuditedAnswer(Response(status_code=204), lambda: queued.append(1))
    with pytest.raises(OSError):
        asyncio.run(answer({"type": "http"}, receive, broken_send))
    assert queued == [1] and answer.status_code == 204
