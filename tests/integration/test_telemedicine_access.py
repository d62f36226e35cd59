"""Telemedicine operations behind real tokens: the local OpenID issuer of the auth tests (keys
made in the test, JWKS over local HTTP), the app's auth middleware, the telemedicine access rules
(`doctor-own-facility`, `consultation-invited`, `schedule-publisher`) and the AuditEvents.

Residents (synthetic): A registered at TTWSY (township, consent to share), C registered at the
village clinic DWCWSS. Hospitals: QYRMYY (invited), LZRMYY (not invited).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ehr_store import SqlStore, Store, StoreSettings
from hie_server.app import create_app
from hie_server.auth import AuthSettings
from hie_server.operations.telemedicine import telemedicine_module
from hie_server.settings import HieSettings
from telemedicine import TelemedicineService

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "unit" / "telemedicine"))
from world import next_monday, seed_residents, template  # noqa: E402

sys.path.insert(0, str(TESTS))
from local_issuer import LocalIssuer, served_issuer  # noqa: E402


@pytest.fixture
def local_issuer() -> Iterator[LocalIssuer]:
    with served_issuer() as issuer:
        yield issuer


Json = dict[str, Any]
VILLAGE = {
    "sub": "u-vil",
    "preferred_username": "doctor.dwcwss",
    "facility": "DWCWSS",
    "county": "441821",
    "realm_access": {"roles": ["village-doctor"]},
}
TOWNSHIP = {
    "sub": "u-town",
    "preferred_username": "doctor.ttwsy",
    "facility": "TTWSY",
    "county": "441821",
    "realm_access": {"roles": ["township-doctor"]},
}
SPECIALIST = {
    "sub": "u-spec",
    "preferred_username": "specialist.qyrmyy",
    "facility": "QYRMYY",
    "county": "441802",
    "realm_access": {"roles": ["specialist"]},
}
OTHER_SPECIALIST = {
    **SPECIALIST,
    "sub": "u-spec-lz",
    "preferred_username": "specialist.lzrmyy",
    "facility": "LZRMYY",
}
ADMIN = {
    "sub": "u-admin",
    "preferred_username": "admin",
    "facility": None,
    "county": None,
    "realm_access": {"roles": ["hie-admin"]},
}
FEED_QY = {
    "sub": "u-feed-qy",
    "preferred_username": "service-account-feed-qyrmyy",
    "azp": "feed-qyrmyy",
    "facility": "QYRMYY",
    "county": "441802",
    "realm_access": {"roles": ["clinic-feed"]},
}
FEED_TT = {
    **FEED_QY,
    "sub": "u-feed-tt",
    "preferred_username": "service-account-feed-ttwsy",
    "azp": "feed-ttwsy",
    "facility": "TTWSY",
    "county": "441821",
}


def _seed_village_resident(store: Store) -> None:
    with store.unit_of_work(write=True) as uow:
        uow.resources.create(
            {
                "resourceType": "Patient",
                "meta": {"source": "urn:qyhie:facility:DWCWSS"},
                "managingOrganization": {"reference": "Organization/org-DWCWSS"},
                "name": [{"family": "测", "given": ["丙"]}],
                "gender": "male",
                "birthDate": "1958-07-01",
                "address": [{"district": "441821"}],
                "link": [{"other": {"reference": "Patient/G-C"}, "type": "refer"}],
            },
            id="DWCWSS-C",
        )
        uow.resources.create(
            {
                "resourceType": "Patient",
                "meta": {"tag": [{"system": "urn:qyhie:empi", "code": "golden"}]},
                "name": [{"family": "测", "given": ["丙"]}],
                "gender": "male",
                "birthDate": "1958-07-01",
                "link": [{"other": {"reference": "Patient/DWCWSS-C"}, "type": "seealso"}],
            },
            id="G-C",
        )
        uow.commit()


class World:
    def __init__(self, client: TestClient, issuer: Any, store: Store) -> None:
        self.client, self.issuer, self.store = client, issuer, store

    def call(self, who: Json, path: str, *params: Json, method: str = "POST") -> Any:
        headers = {"Authorization": f"Bearer {self.issuer.token(**who)}"}
        if method == "GET":
            return self.client.get(f"/fhir/{path}", headers=headers)
        body = {"resourceType": "Parameters", "parameter": list(params)}
        return self.client.post(f"/fhir/{path}", json=body, headers=headers)

    def audit(self, **params: str) -> list[Json]:
        self.client.app.state.audit_writer.flush()  # type: ignore[attr-defined]
        r = self.call(
            ADMIN,
            "AuditEvent?" + "&".join(f"{k}={v}" for k, v in {"_count": "200", **params}.items()),
            method="GET",
        )
        assert r.status_code == 200, r.text
        return [e["resource"] for e in r.json().get("entry", [])]


@pytest.fixture
def world(local_issuer: Any, sqlite_url: str) -> Iterator[World]:
    settings = HieSettings(
        store=StoreSettings(database_url=sqlite_url),
        auth=AuthSettings(issuer=local_issuer.issuer, jwks_min_refresh_seconds=0),
    )
    store = SqlStore(settings.store)
    seed_residents(store)
    _seed_village_resident(store)
    service = TelemedicineService(store, settings.telemedicine)
    service.publish(template(), next_monday(), 1)
    app = create_app(settings, store, modules=[telemedicine_module(service)])
    with TestClient(app, raise_server_exceptions=False) as client:
        yield World(client, local_issuer, store)
    app.state.audit_writer.close()
    service.close()
    store.close()


def ref(name: str, reference: str) -> Json:
    return {"name": name, "valueReference": {"reference": reference}}


def text(name: str, value: str) -> Json:
    return {"name": name, "valueString": value}


def refused(response: Any, rule: str) -> None:
    assert response.status_code == 403, response.text
    issue = response.json()["issue"][0]
    assert issue["code"] == "forbidden" and f"rule '{rule}'" in issue["diagnostics"], issue


def policies(event: Json) -> set[str]:
    return {p.rpartition(":")[2] for agent in event.get("agent", []) for p in agent.get("policy", [])}


def refs(event: Json) -> set[str]:
    return {str(e["what"]["reference"]) for e in event.get("entity", []) if "what" in e}


def test_village_doctor_books_only_for_own_residents(world: World) -> None:
    assert (
        world.call(
            VILLAGE, "Appointment/$book", ref("slot", "Slot/x"), ref("patient", "Patient/G-C")
        ).status_code
        != 401
    )  # a token is accepted
    assert (
        world.client.post("/fhir/Appointment/$book", json={"resourceType": "Parameters"}).status_code == 401
    )
    found = world.call(
        VILLAGE, f"Appointment/$find?start={next_monday().isoformat()}&specialty=03.04", method="GET"
    )
    assert found.status_code == 200, found.text
    slots = [e["resource"]["id"] for e in found.json()["entry"]]
    assert len(slots) == 16
    own = world.call(
        VILLAGE, "Appointment/$book", ref("slot", f"Slot/{slots[0]}"), ref("patient", "Patient/DWCWSS-C")
    )
    assert own.status_code == 201, own.text
    assert own.json()["participant"][0]["actor"]["reference"] == "Patient/G-C"
    other = world.call(
        VILLAGE, "Appointment/$book", ref("slot", f"Slot/{slots[1]}"), ref("patient", "Patient/G-A")
    )
    refused(other, "doctor-own-facility")
    slot = world.call(ADMIN, f"Slot/{slots[1]}", method="GET").json()
    assert (
        slot["status"] == "free"
        and next(e for e in slot["extension"] if e["url"].endswith("slot-booked"))["valueUnsignedInt"] == 0
    )  # nothing written
    appt = own.json()["id"]
    refused(
        world.call(TOWNSHIP, f"Appointment/{appt}/$cancel", text("reason", "不去了")), "doctor-own-facility"
    )
    assert world.call(VILLAGE, f"Appointment/{appt}/$cancel", text("reason", "不去了")).status_code == 200
    events = world.audit(**{"agent-name": "doctor.dwcwss"})
    booked = [e for e in events if e["outcome"] == "0" and f"Appointment/{appt}" in refs(e)]
    assert len(booked) == 2 and all("Patient/G-C" in refs(e) or "Patient/DWCWSS-C" in refs(e) for e in booked)
    denied = [e for e in events if e["outcome"] == "4" and e["outcomeDesc"].startswith("HTTP 403")]
    assert [(policies(e), refs(e)) for e in denied] == [({"doctor-own-facility"}, {"Patient/G-A"})]
    township = world.audit(**{"agent-name": "doctor.ttwsy"})
    assert [policies(e) for e in township if e["outcome"] == "4"] == [{"doctor-own-facility"}]


def test_only_the_invited_hospital_answers_schedules_and_opines(world: World) -> None:
    sr = world.call(
        TOWNSHIP,
        "ServiceRequest/$request-consultation",
        ref("patient", "Patient/TTWSY-A"),
        ref("performer", "Organization/org-QYRMYY"),
        text("reason", "胸痛待查"),
        text("question", "冠脉造影?"),
        ref("consent", "Consent/consent-A"),
    )
    assert sr.status_code == 201, sr.text
    sid = sr.json()["id"]
    refused(
        world.call(
            VILLAGE,
            "ServiceRequest/$request-consultation",
            ref("patient", "Patient/TTWSY-A"),
            ref("performer", "Organization/org-QYRMYY"),
            text("reason", "胸痛"),
            text("question", "?"),
            ref("consent", "Consent/consent-A"),
        ),
        "doctor-own-facility",
    )
    for who in (OTHER_SPECIALIST, VILLAGE, TOWNSHIP):
        refused(world.call(who, f"ServiceRequest/{sid}/$accept"), "consultation-invited")
        refused(
            world.call(who, f"ServiceRequest/{sid}/$decline", text("reason", "忙")), "consultation-invited"
        )
    assert world.call(SPECIALIST, f"ServiceRequest/{sid}/$accept").status_code == 200
    when = (
        text("start", "2026-06-01T09:00:00+08:00"),
        text("end", "2026-06-01T09:30:00+08:00"),
        text("meetingUrl", "https://meet.example.cn/r/abc"),
    )
    refused(world.call(OTHER_SPECIALIST, f"ServiceRequest/{sid}/$schedule", *when), "consultation-invited")
    assert world.call(SPECIALIST, f"ServiceRequest/{sid}/$schedule", *when).status_code == 201
    # another hospital's specialist may not even see the resident (no consultation addressed to them)
    refused(
        world.call(OTHER_SPECIALIST, f"ServiceRequest/{sid}/$opinion", text("opinion", "x")),
        "specialist-needs-referral",
    )
    refused(
        world.call(TOWNSHIP, f"ServiceRequest/{sid}/$opinion", text("opinion", "x")), "consultation-invited"
    )
    opinion = world.call(SPECIALIST, f"ServiceRequest/{sid}/$opinion", text("opinion", "建议冠脉CTA"))
    assert opinion.status_code == 201, opinion.text
    assert world.call(ADMIN, f"ServiceRequest/{sid}", method="GET").json()["status"] == "completed"
    written = {
        r.split("/")[0]
        for e in world.audit(**{"agent-name": "specialist.qyrmyy"})
        if e["outcome"] == "0"
        for r in refs(e)
    }
    assert {"Task", "Appointment", "Composition", "Patient"} <= written  # $accept, $schedule, $opinion
    lz = world.audit(**{"agent-name": "specialist.lzrmyy"})
    assert sorted(str(policies(e)) for e in lz if e["outcome"] == "4") == ["{'consultation-invited'}"] * 3 + [
        "{'specialist-needs-referral'}"
    ]
    assert {"Patient/G-A"} in [refs(e) for e in lz]  # $opinion names the resident it was refused for


def test_only_admins_and_the_hospitals_feed_publish(world: World) -> None:
    tpl = json.dumps(
        {
            "practitioner_role": "QYRMYY-card-2",
            "organization": "org-QYRMYY",
            "specialty": {"system": "urn:qyhie:department", "code": "03.04"},
            "county": "441802",
            "sessions": [{"weekday": 1, "session": "morning", "slot_minutes": 30}],
        }
    )
    start = "2026-03-02"  # a week without holidays (a past week publishes the same)
    publish = (
        text("template", tpl),
        {"name": "start", "valueDate": start},
        {"name": "days", "valueInteger": 7},
    )
    for who in (FEED_TT, TOWNSHIP, SPECIALIST):
        r = world.call(who, "Schedule/$publish", *publish)
        assert r.status_code == 403, r.text
        assert "rule '" in r.json()["issue"][0]["diagnostics"]
    refused(world.call(FEED_TT, "Schedule/$publish", *publish), "schedule-publisher")
    refused(
        world.call(SPECIALIST, "Schedule/$publish", *publish), "reference-data-admin-only"
    )  # endpoint rule
    by_feed = world.call(FEED_QY, "Schedule/$publish", *publish)
    assert by_feed.status_code == 200, by_feed.text
    created = {p["name"]: p.get("valueInteger") for p in by_feed.json()["parameter"]}["created"]
    assert created == 8  # Tuesday morning, 8 × 30 min
    by_admin = world.call(ADMIN, "Schedule/$publish", *publish)
    assert {p["name"]: p.get("valueInteger") for p in by_admin.json()["parameter"]}["unchanged"] == created
    sid = "sch-QYRMYY-card-2"
    stop = (text("date", start), text("reason", "专家外出"))
    refused(world.call(FEED_TT, f"Schedule/{sid}/$stop-clinic", *stop), "schedule-publisher")
    assert world.call(FEED_QY, f"Schedule/{sid}/$stop-clinic", *stop).status_code == 200
    feed_events = world.audit(**{"agent-name": "service-account-feed-ttwsy"})
    assert len(feed_events) == 3 and all(policies(e) == {"schedule-publisher"} for e in feed_events)
    ok = [e for e in world.audit(**{"agent-name": "service-account-feed-qyrmyy"}) if e["outcome"] == "0"]
    assert len(ok) == 2 and any(f"Schedule/{sid}" in refs(e) for e in ok)
