"""The remote consultation workflow through the REST API, with webhook delivery to a real
local HTTP receiver (retries after a failure) and the WS/T 483.19 export."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ehr_store import SqlStore, StoreSettings
from hie_server.app import create_app
from hie_server.operations.telemedicine import telemedicine_module
from hie_server.settings import HieSettings
from telemedicine import TelemedicineService, TelemedicineSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "telemedicine"))
from world import seed_residents


class Receiver:
    """A webhook endpoint that fails its first request (to exercise the retry)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.calls = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.calls += 1
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = 503 if receiver.calls == 1 else 200
                if status == 200:
                    receiver.received.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def world(sqlite_url: str) -> Iterator[tuple[TestClient, Receiver, TelemedicineService]]:
    receiver = Receiver()
    tm = TelemedicineSettings(webhook_url=receiver.url, webhook_backoff_seconds=0.05)
    settings = HieSettings(store=StoreSettings(database_url=sqlite_url), telemedicine=tm)
    store = SqlStore(settings.store)
    seed_residents(store)
    service = TelemedicineService(store, tm)
    with TestClient(create_app(settings, store, modules=[telemedicine_module(service)])) as client:
        yield client, receiver, service
    service.close()
    store.close()
    receiver.server.shutdown()


def _p(name: str, **value: Any) -> dict[str, Any]:
    return {"name": name, **value}


def _call(client: TestClient, path: str, *params: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = client.post(f"/fhir/{path}", json={"resourceType": "Parameters", "parameter": list(params)})
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def test_consultation_workflow(world: tuple[TestClient, Receiver, TelemedicineService]) -> None:
    client, receiver, service = world
    subscription = {
        "resourceType": "Subscription",
        "status": "active",
        "reason": "会诊通知",
        "criteria": "Communication?category=consultation-opinion",
        "channel": {"type": "rest-hook", "endpoint": receiver.url, "payload": "application/fhir+json"},
    }
    assert client.post("/fhir/Subscription", json=subscription).status_code == 201
    # no consent → refused, nothing written
    refused = client.post(
        "/fhir/ServiceRequest/$request-consultation",
        json={
            "resourceType": "Parameters",
            "parameter": [
                _p("patient", valueReference={"reference": "Patient/TTWSY-A"}),
                _p("performer", valueReference={"reference": "Organization/org-QYRMYY"}),
                _p("reason", valueString="胸痛待查"),
                _p("question", valueString="是否需要冠脉造影?"),
                _p("consent", valueReference={"reference": "Consent/missing"}),
            ],
        },
    )
    assert refused.status_code == 404
    sr = _call(
        client,
        "ServiceRequest/$request-consultation",
        _p("patient", valueReference={"reference": "Patient/TTWSY-A"}),
        _p("performer", valueReference={"reference": "Organization/org-QYRMYY"}),
        _p("reason", valueString="胸痛待查"),
        _p("question", valueString="是否需要冠脉造影?"),
        _p("requester", valueReference={"reference": "Organization/org-TTWSY"}),
        _p("urgency", valueCode="urgent"),
        _p("shared", valueReference={"reference": "DiagnosticReport/ecg-A"}),
        _p("consent", valueReference={"reference": "Consent/consent-A"}),
        status=201,
    )
    assert (
        sr["status"] == "active"
        and sr["priority"] == "urgent"
        and sr["subject"]["reference"] == "Patient/G-A"
    )
    sid = sr["id"]
    task = client.get("/fhir/Task", params={"focus": f"ServiceRequest/{sid}"}).json()["entry"][0]["resource"]
    assert task["status"] == "requested" and task["owner"]["reference"] == "Organization/org-QYRMYY"
    assert _call(client, f"ServiceRequest/{sid}/$accept")["status"] == "accepted"
    _call(client, f"ServiceRequest/{sid}/$accept", status=422)  # answered already
    appt = _call(
        client,
        f"ServiceRequest/{sid}/$schedule",
        _p("start", valueDateTime="2026-06-01T09:00:00+08:00"),
        _p("end", valueDateTime="2026-06-01T09:30:00+08:00"),
        _p("meetingUrl", valueUrl="https://meet.example.cn/r/abc123"),
        _p("participant", valueReference={"reference": "PractitionerRole/QYRMYY-card-1"}),
        status=201,
    )
    roles = {c["code"] for p in appt["participant"] for t in p.get("type", []) for c in t["coding"]}
    assert roles == {"inviting", "invited"} and appt["extension"][0]["extension"][1]["valueUrl"].endswith(
        "abc123"
    )
    note = _call(
        client,
        f"ServiceRequest/{sid}/$opinion",
        _p("opinion", valueString="建议冠脉CTA, 暂予阿司匹林"),
        _p("diagnosis", valueString="不稳定型心绞痛?"),
        status=201,
    )
    assert (
        note["resourceType"] == "Composition"
        and note["event"][0]["detail"][0]["reference"] == f"ServiceRequest/{sid}"
    )
    assert client.get(f"/fhir/ServiceRequest/{sid}").json()["status"] == "completed"
    assert client.get(f"/fhir/Appointment/{appt['id']}").json()["status"] == "fulfilled"
    up = _call(
        client,
        f"ServiceRequest/{sid}/$refer",
        _p("direction", valueCode="up"),
        _p("target", valueReference={"reference": "Organization/org-GDSRMYY"}),
        _p("reason", valueString="需介入治疗"),
        status=201,
    )
    assert (
        up["category"][0]["coding"][0]["code"] == "3457005"
        and up["basedOn"][0]["reference"] == f"ServiceRequest/{sid}"
    )
    record = client.get(f"/fhir/ServiceRequest/{sid}/$consultation-record").json()
    assert (
        record["会诊意见"].startswith("建议冠脉CTA")
        and record["患者"]["身份证件号码 (DE02.01.030.00)"] == "44182119700301002X"
    )
    assert [s["状态"] for s in record["状态记录"]] == ["requested", "accepted", "in-progress", "completed"]
    assert record["会诊安排"]["视频会议链接"] == "https://meet.example.cn/r/abc123"
    assert record["会诊申请"]["病历摘要/共享资料"] == ["DiagnosticReport/ecg-A"]
    assert service.dispatcher.wait_idle(20)
    events = [r["category"][0]["coding"][0]["code"] for r in receiver.received]
    # every Communication reached the webhook (one after a retry); the opinion also via the Subscription
    assert sorted(set(events)) == [
        "consultation-accepted",
        "consultation-opinion",
        "consultation-requested",
        "consultation-scheduled",
        "referral-up",
    ]
    assert events.count("consultation-opinion") == 2 and receiver.calls == len(receiver.received) + 1


def test_declined_consultation_is_revoked(world: tuple[TestClient, Receiver, TelemedicineService]) -> None:
    client, _, _ = world
    sr = _call(
        client,
        "ServiceRequest/$request-consultation",
        _p("patient", valueReference={"reference": "Patient/G-A"}),
        _p("performer", valueReference={"reference": "Organization/org-QYRMYY"}),
        _p("reason", valueString="头晕"),
        _p("question", valueString="?"),
        _p("consent", valueReference={"reference": "Consent/consent-A"}),
        status=201,
    )
    _call(client, f"ServiceRequest/{sr['id']}/$decline", status=400)  # reason required
    task = _call(client, f"ServiceRequest/{sr['id']}/$decline", _p("reason", valueString="专家外出"))
    assert task["status"] == "rejected" and task["statusReason"]["text"] == "专家外出"
    assert client.get(f"/fhir/ServiceRequest/{sr['id']}").json()["status"] == "revoked"
