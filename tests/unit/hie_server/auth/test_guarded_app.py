"""The app with authentication, access rules and audit, against a local issuer and a memory store.

The same matrix runs against a real Keycloak in tests/integration/test_keycloak_access.py.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ehr_store import MemoryStore
from hie_server.app import create_app
from hie_server.auth import AuthSettings
from hie_server.settings import HieSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from auth_world import seed

DOCTOR = {
    "preferred_username": "doctor.ttwsy",
    "realm_access": {"roles": ["township-doctor"]},
    "facility": "TTWSY",
    "county": "441821",
}
SPECIALIST = {
    "preferred_username": "specialist.qyrmyy",
    "realm_access": {"roles": ["specialist"]},
    "facility": "QYRMYY",
    "county": "441802",
    "sub": "u-spec",
}
CDC = {
    "preferred_username": "cdc.fogang",
    "realm_access": {"roles": ["cdc-staff"]},
    "facility": None,
    "county": "441821",
    "sub": "u-cdc",
}
FEED = {
    "preferred_username": "service-account-feed-ttwsy",
    "realm_access": {"roles": ["clinic-feed"]},
    "azp": "feed-ttwsy",
    "sub": "u-feed",
}
ADMIN = {
    "preferred_username": "admin",
    "realm_access": {"roles": ["hie-admin"]},
    "facility": None,
    "county": None,
    "sub": "u-admin",
}


@pytest.fixture
def world(local_issuer) -> Iterator[tuple[TestClient, object]]:
    store = MemoryStore()
    seed(store)
    settings = HieSettings(auth=AuthSettings(issuer=local_issuer.issuer, jwks_min_refresh_seconds=0))
    app = create_app(settings, store)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, local_issuer
    app.state.audit_writer.close()


def call(world, claims, method, url, **kw):
    client, issuer = world
    headers = {"Authorization": f"Bearer {issuer.token(**claims)}", **kw.pop("headers", {})}
    return client.request(method, url, headers=headers, **kw)


def ids(response) -> set[str]:
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in response.json().get("entry", [])
    }


def audit_events(world, **params) -> list[dict]:
    world[0].app.state.audit_writer.flush()
    r = call(world, ADMIN, "GET", "/fhir/AuditEvent", params={"_count": "200", **params})
    assert r.status_code == 200
    return [e["resource"] for e in r.json().get("entry", [])]


def test_token_required_and_public_documents(world):
    client, _ = world
    r = client.get("/fhir/Patient")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["resourceType"] == "OperationOutcome" and r.json()["issue"][0]["code"] == "login"
    assert client.get("/fhir/metadata").status_code == 200
    smart = client.get("/fhir/.well-known/smart-configuration")
    assert smart.status_code == 200 and "S256" in smart.json()["code_challenge_methods_supported"]
    assert client.get("/.well-known/smart-configuration").status_code == 200
    assert client.post("/hl7v2", content=b"MSH|^~\\&|").status_code == 401


def test_wrong_audience_is_401_and_audited(world):
    r = call(world, {**DOCTOR, "aud": "account", "azp": "hie-cli"}, "GET", "/fhir/Patient")
    assert r.status_code == 401
    logins = audit_events(world, subtype="110122")
    assert logins and logins[-1]["outcome"] == "4"


def test_doctor_reads_own_residents_only(world):
    assert call(world, DOCTOR, "GET", "/fhir/Patient/QYRMYY-A").status_code == 200
    r = call(world, DOCTOR, "GET", "/fhir/Patient/QYRMYY-B")
    assert r.status_code == 403 and "doctor-own-facility" in r.json()["issue"][0]["diagnostics"]
    assert call(world, DOCTOR, "GET", "/fhir/Observation/obs-B-QY").status_code == 403


def test_search_include_and_total_do_not_leak(world):
    r = call(
        world,
        DOCTOR,
        "GET",
        "/fhir/Observation",
        params={"_include": "Observation:subject", "_total": "accurate"},
    )
    assert r.status_code == 200
    found = ids(r)
    assert {
        "Observation/obs-A-TT",
        "Observation/obs-A-QY",
        "Patient/TTWSY-A",
        "Observation/obs-D-TT",
    } <= found
    assert (
        not {"Observation/obs-B-QY", "Patient/QYRMYY-B", "Observation/obs-D-QY", "Patient/QYRMYY-D"} & found
    )
    assert "total" not in r.json()
    r = call(world, DOCTOR, "GET", "/fhir/Patient", params={"_revinclude": "Observation:subject"})
    assert not {"Patient/QYRMYY-B", "Observation/obs-B-QY", "Patient/G-B"} & ids(r)
    assert "Patient/G-A" in ids(r)
    counted = call(world, DOCTOR, "GET", "/fhir/Observation", params={"_summary": "count"})
    assert counted.status_code == 403 and "count-needs-patient" in counted.text
    named = call(
        world, DOCTOR, "GET", "/fhir/Observation", params={"subject": "Patient/TTWSY-A", "_summary": "count"}
    )
    assert named.status_code == 200 and named.json()["total"] == 1


def test_elements_cannot_hide_the_subject(world):
    r = call(world, DOCTOR, "GET", "/fhir/Observation", params={"_elements": "status"})
    assert "Observation/obs-B-QY" not in ids(r) and "Observation/obs-A-TT" in ids(r)


def test_opt_out_limits_doctor_to_own_facility_data(world):
    assert call(world, DOCTOR, "GET", "/fhir/Observation/obs-D-TT").status_code == 200
    r = call(world, DOCTOR, "GET", "/fhir/Observation/obs-D-QY")
    assert r.status_code == 403 and "consent-opt-out" in r.text


def test_break_glass_opens_for_a_while_and_is_flagged(world):
    assert call(world, DOCTOR, "GET", "/fhir/Patient/QYRMYY-B").status_code == 403
    r = call(
        world,
        DOCTOR,
        "GET",
        "/fhir/Patient/QYRMYY-B",
        headers={"X-Break-Glass-Reason": "unconscious at the ER"},
    )
    assert r.status_code == 200
    assert call(world, DOCTOR, "GET", "/fhir/Observation/obs-B-QY").status_code == 200  # window still open
    events = audit_events(world, policy="urn:qyhie:policy:break-glass")
    assert events and events[0]["purposeOfEvent"][0]["coding"][0]["code"] == "BTG"
    assert (
        call(
            world, CDC, "GET", "/fhir/Patient/QYRMYY-B", headers={"X-Break-Glass-Reason": "outbreak!!"}
        ).status_code
        == 403
    )


def test_specialist_needs_referral_and_consent(world):
    assert call(world, SPECIALIST, "GET", "/fhir/Patient/TTWSY-A").status_code == 200
    r = call(world, SPECIALIST, "GET", "/fhir/Patient/QYRMYY-B")
    assert r.status_code == 403 and "specialist-needs-referral" in r.text


def test_cdc_sees_its_county(world):
    r = call(world, CDC, "GET", "/fhir/Patient", params={"_count": "50"})
    assert "Patient/TTWSY-A" in ids(r) and "Patient/QYRMYY-B" not in ids(r)
    assert (
        call(world, CDC, "POST", "/fhir/Observation", json={"resourceType": "Observation"}).status_code == 403
    )


def test_feed_writes_only_as_its_facility_and_write_is_audited(world):
    feed = {**FEED, "facility": "TTWSY", "county": "441821"}
    other = {
        "resourceType": "Observation",
        "meta": {"source": "urn:qyhie:facility:QYRMYY"},
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": "Patient/TTWSY-A"},
    }
    r = call(
        world,
        feed,
        "POST",
        "/fhir/Observation",
        json=other,
        headers={"Content-Type": "application/fhir+json"},
    )
    assert r.status_code == 403 and "feed-own-facility" in r.text
    own = {**other, "meta": {"source": "urn:qyhie:facility:TTWSY"}}
    r = call(
        world, feed, "POST", "/fhir/Observation", json=own, headers={"Content-Type": "application/fhir+json"}
    )
    assert r.status_code == 201
    new_id = r.json()["id"]
    events = audit_events(world, entity=f"Observation/{new_id}")
    assert [e["action"] for e in events if e["outcome"] == "0"] == ["C"]
    hl7 = b"MSH|^~\\&|HIS|QYRMYY|HIE|QY|20260901||ADT^A01|1|P|2.5\rPID|1\r"
    assert call(world, feed, "POST", "/hl7v2", content=hl7).status_code == 403


def test_audit_events_are_admin_only_and_immutable(world):
    call(world, DOCTOR, "GET", "/fhir/Patient/TTWSY-A")
    events = audit_events(world, patient="Patient/TTWSY-A")
    assert events, "the read produced an AuditEvent"
    event = events[0]
    agent = event["agent"][0]
    assert agent["name"] == "doctor.ttwsy" and agent["who"]["display"] == "doctor.ttwsy@TTWSY"
    assert call(world, DOCTOR, "GET", "/fhir/AuditEvent").status_code == 403
    aid = event["id"]
    assert call(world, ADMIN, "DELETE", f"/fhir/AuditEvent/{aid}").status_code == 403
    assert call(world, ADMIN, "PUT", f"/fhir/AuditEvent/{aid}", json=event).status_code == 403
    assert call(world, ADMIN, "GET", f"/fhir/AuditEvent/{aid}").status_code == 200


def test_batch_reads_refused_for_clinicians(world):
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": "Patient/QYRMYY-B"}}],
    }
    r = call(world, DOCTOR, "POST", "/fhir", json=bundle, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 403 and "batch-entries" in r.text


def test_audit_events_cannot_be_written_through_a_transaction(world):
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": {"resourceType": "AuditEvent"}, "request": {"method": "POST", "url": "AuditEvent"}}
        ],
    }
    for who in (ADMIN, DOCTOR):
        r = call(world, who, "POST", "/fhir", json=bundle, headers={"Content-Type": "application/fhir+json"})
        assert r.status_code == 403 and "audit-immutable" in r.text


def test_directory_data_is_visible_to_every_clinician_but_not_writable(world):
    """号源 (Schedule/Slot) and who-works-where are regional directory data: a township doctor
    sees another hospital's schedule, which names no resident, but cannot change it."""
    schedule = {
        "resourceType": "Schedule",
        "id": "sch-qyrmyy-neuro",
        "meta": {"source": "urn:qyhie:facility:QYRMYY"},
        "active": True,
        "actor": [{"reference": "PractitionerRole/pr-qyrmyy-neuro"}],
    }
    assert call(world, ADMIN, "PUT", "/fhir/Schedule/sch-qyrmyy-neuro", json=schedule).status_code in (
        200,
        201,
    )
    read = call(world, DOCTOR, "GET", "/fhir/Schedule/sch-qyrmyy-neuro")
    assert read.status_code == 200, read.text
    assert read.json()["actor"][0]["reference"] == "PractitionerRole/pr-qyrmyy-neuro"
    assert "Schedule/sch-qyrmyy-neuro" in ids(call(world, DOCTOR, "GET", "/fhir/Schedule"))
    changed = call(
        world, DOCTOR, "PUT", "/fhir/Schedule/sch-qyrmyy-neuro", json={**schedule, "active": False}
    )
    assert changed.status_code == 403
