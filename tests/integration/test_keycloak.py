"""Sign-in, access rules and audit against a real Keycloak (26.x, dev mode, realm imported
from docker/keycloak/qingyuan-realm.json by tests/kcserver.py) and a real PostgreSQL.

Tokens come from Keycloak's token endpoint (password grant for the demo users through
`hie-cli`, client credentials for the feed clients); the app verifies them against the realm's
JWKS. The matrix covers REST read/search with `_include`, `$everything`, `POST /hl7v2`, AuditEvent
search; no leak through includes or totals; an AuditEvent for each access. Keycloak is started
once per session (tens of seconds); under CI=true a missing Keycloak fails the tests.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import kcserver
from auth_world import seed
from conftest import truncate_postgres

from ehr_store import SqlStore, StoreSettings
from ehr_store.empi import EmpiService
from hie_server import cli_hl7
from hie_server.app import create_app
from hie_server.auth import AuthSettings
from hie_server.auth.keycloak_admin import login, provision
from hie_server.operations.empi import empi_module
from hie_server.settings import HieSettings

pytestmark = pytest.mark.slow
USERS = ("doctor.ttwsy", "doctor.dwcwss", "specialist.qyrmyy", "cdc.fogang", "cdc.city", "admin")
FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
def tokens(keycloak: kcserver.KeycloakServer) -> dict[str, str]:
    out = {
        u: login(keycloak.issuer, "hie-cli", username=u, password=kcserver.DEMO_PASSWORD)["access_token"]
        for u in USERS
    }
    for fac in ("ttwsy", "qyrmyy"):
        out[f"feed-{fac}"] = login(
            keycloak.issuer, f"feed-{fac}", client_secret=f"dev-only-feed-secret-{fac}"
        )["access_token"]
    out["doctor.ttwsy:patient-rs"] = login(
        keycloak.issuer,
        "hie-cli",
        username="doctor.ttwsy",
        password=kcserver.DEMO_PASSWORD,
        scope="openid patient/*.rs",
    )["access_token"]
    return out


@pytest.fixture(scope="module")
def client(keycloak: kcserver.KeycloakServer, postgres_url: str) -> Iterator[TestClient]:
    truncate_postgres(postgres_url)
    store = SqlStore(StoreSettings(database_url=postgres_url, pool_size=4))
    seed(store)
    settings = HieSettings(auth=AuthSettings(issuer=keycloak.issuer))
    app = create_app(
        settings,
        store,
        modules=[empi_module(EmpiService())],
        root_routers=cli_hl7.http_routers(settings, store),
    )
    try:
        with TestClient(app, raise_server_exceptions=False) as test_client:
            yield test_client
    finally:
        app.state.audit_writer.close()
        store.close()


def call(
    client: TestClient, tokens: dict[str, str], who: str, method: str, url: str, **kw: object
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {tokens[who]}", **kw.pop("headers", {})}  # type: ignore[dict-item]
    return client.request(method, url, headers=headers, **kw)  # type: ignore[arg-type]


def entry_ids(response: httpx.Response) -> set[str]:
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in response.json().get("entry", [])
    }


HL7_TTWSY = (
    b"MSH|^~\\&|HIS|TTWSY|HIE|QY|20260901082300||ADT^A01^ADT_A01|KC0001|P|2.5\r"
    b"EVN|A01|20260901082300\rPID|1||TT0000777^^^TTWSY^MR||\xe6\xb5\x8b^\xe8\xaf\x95||19800101|F\r"
    b"PV1|1|O\r"
)

MATRIX = [
    # who, method, url, expected status
    ("doctor.ttwsy", "GET", "/fhir/Patient/TTWSY-A", 200),
    ("doctor.ttwsy", "GET", "/fhir/Patient/QYRMYY-A", 200),  # same resident, registered here too
    ("doctor.ttwsy", "GET", "/fhir/Patient/QYRMYY-B", 403),
    ("doctor.ttwsy", "GET", "/fhir/Observation/obs-D-QY", 403),  # opted out of cross-facility sharing
    ("doctor.ttwsy", "GET", "/fhir/Patient/TTWSY-A/$everything", 200),
    ("doctor.ttwsy", "GET", "/fhir/Patient/QYRMYY-B/$everything", 403),
    ("doctor.ttwsy", "GET", "/fhir/AuditEvent", 403),
    ("doctor.ttwsy", "DELETE", "/fhir/Observation/obs-A-TT", 403),
    ("doctor.dwcwss", "GET", "/fhir/Patient/TTWSY-A", 403),
    ("specialist.qyrmyy", "GET", "/fhir/Patient/TTWSY-A", 200),  # referral + consent
    ("specialist.qyrmyy", "GET", "/fhir/Patient/QYRMYY-B", 403),  # no referral
    ("cdc.fogang", "GET", "/fhir/Patient/TTWSY-A", 200),  # lives in 441821
    ("cdc.fogang", "GET", "/fhir/Patient/QYRMYY-B", 403),  # lives in 441802
    ("cdc.city", "GET", "/fhir/Patient/QYRMYY-B", 200),
    ("cdc.fogang", "GET", "/fhir/Patient/TTWSY-A/$everything", 403),
    ("feed-ttwsy", "GET", "/fhir/Patient/TTWSY-A", 200),
    ("feed-ttwsy", "GET", "/fhir/Patient/QYRMYY-B", 403),
    ("admin", "GET", "/fhir/Patient/QYRMYY-B", 200),
    ("admin", "GET", "/fhir/AuditEvent", 200),
    ("admin", "GET", "/fhir/Patient/QYRMYY-B/$everything", 200),
]


@pytest.mark.parametrize(("who", "method", "url", "status"), MATRIX)
def test_roles_by_endpoints(client, tokens, who, method, url, status):
    r = call(client, tokens, who, method, url)
    assert r.status_code == status, r.text[:300]
    if status == 403:
        issue = r.json()["issue"][0]
        assert issue["code"] == "forbidden" and "rule '" in issue["diagnostics"]


def test_no_token_and_bad_tokens(client, tokens):
    r = client.get("/fhir/Patient/TTWSY-A")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    head, payload, sig = tokens["doctor.ttwsy"].split(".")
    assert (
        client.get(
            "/fhir/Patient/TTWSY-A", headers={"Authorization": f"Bearer {head}.{payload}.{sig[:-4]}AAAA"}
        ).status_code
        == 401
    )
    assert client.get("/fhir/metadata").status_code == 200
    smart = client.get("/fhir/.well-known/smart-configuration").json()
    assert smart["token_endpoint"].endswith("/realms/qingyuan/protocol/openid-connect/token")


def test_search_with_include_and_totals_do_not_leak(client, tokens):
    r = call(
        client,
        tokens,
        "doctor.ttwsy",
        "GET",
        "/fhir/Observation",
        params={"_include": "Observation:subject", "_total": "accurate"},
    )
    found = entry_ids(r)
    assert {"Observation/obs-A-TT", "Patient/TTWSY-A", "Observation/obs-D-TT"} <= found
    assert not {"Observation/obs-B-QY", "Patient/QYRMYY-B", "Observation/obs-D-QY"} & found
    assert "total" not in r.json()
    admin = call(client, tokens, "admin", "GET", "/fhir/Observation", params={"_total": "accurate"})
    assert admin.json()["total"] >= 5
    assert (
        call(
            client, tokens, "doctor.ttwsy", "GET", "/fhir/Observation", params={"_summary": "count"}
        ).status_code
        == 403
    )
    cdc = call(client, tokens, "cdc.fogang", "GET", "/fhir/Patient", params={"_count": "100"})
    assert "Patient/TTWSY-A" in entry_ids(cdc) and "Patient/QYRMYY-B" not in entry_ids(cdc)


def test_everything_filters_opted_out_data(client, tokens):
    r = call(client, tokens, "doctor.ttwsy", "GET", "/fhir/Patient/TTWSY-D/$everything")
    assert r.status_code == 200
    assert "Observation/obs-D-QY" not in entry_ids(r)


def test_smart_scope_narrows(client, tokens):
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "pulse"},
        "subject": {"reference": "Patient/TTWSY-A"},
        "meta": {"source": "urn:qyhie:facility:TTWSY"},
    }
    r = call(client, tokens, "doctor.ttwsy:patient-rs", "POST", "/fhir/Observation", json=obs, headers=FHIR)
    assert r.status_code == 403 and "smart-scope" in r.text
    assert call(client, tokens, "doctor.ttwsy:patient-rs", "GET", "/fhir/Patient/TTWSY-A").status_code == 200
    assert (
        call(client, tokens, "doctor.ttwsy", "POST", "/fhir/Observation", json=obs, headers=FHIR).status_code
        == 201
    )


def test_feed_writes_as_its_own_facility(client, tokens):
    other = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": "Patient/TTWSY-A"},
        "meta": {"source": "urn:qyhie:facility:QYRMYY"},
    }
    r = call(client, tokens, "feed-ttwsy", "POST", "/fhir/Observation", json=other, headers=FHIR)
    assert r.status_code == 403 and "feed-own-facility" in r.text
    r = call(
        client,
        tokens,
        "feed-qyrmyy",
        "POST",
        "/hl7v2",
        content=HL7_TTWSY,
        headers={"Content-Type": "x-application/hl7-v2+er7"},
    )
    assert r.status_code == 403 and "MSH-4" in r.text
    assert call(client, tokens, "doctor.ttwsy", "POST", "/hl7v2", content=HL7_TTWSY).status_code == 403
    r = call(
        client,
        tokens,
        "feed-ttwsy",
        "POST",
        "/hl7v2",
        content=HL7_TTWSY,
        headers={"Content-Type": "x-application/hl7-v2+er7"},
    )
    assert r.status_code == 200 and "MSA|AA|KC0001" in r.text


def test_every_access_is_audited(client, tokens):
    call(client, tokens, "specialist.qyrmyy", "GET", "/fhir/Patient/TTWSY-A")
    call(client, tokens, "specialist.qyrmyy", "GET", "/fhir/Patient/QYRMYY-B")
    client.app.state.audit_writer.flush()
    r = call(
        client,
        tokens,
        "admin",
        "GET",
        "/fhir/AuditEvent",
        params={"agent-name": "specialist.qyrmyy", "_count": "50"},
    )
    events = [e["resource"] for e in r.json().get("entry", [])]
    outcomes = {(e["entity"][0]["what"]["reference"], e["outcome"]) for e in events if e.get("entity")}
    assert ("Patient/TTWSY-A", "0") in outcomes
    refused = [e for e in events if e["outcome"] == "4"]
    assert refused and any(
        "specialist-needs-referral" in p for e in refused for p in e["agent"][0].get("policy", [])
    )
    agent = events[0]["agent"][0]
    assert (
        agent["altId"] == "hie-cli"
        and {"coding": [{"system": "urn:qyhie:role", "code": "specialist"}]} in agent["role"]
    )
    audit_id = events[0]["id"]
    assert call(client, tokens, "admin", "DELETE", f"/fhir/AuditEvent/{audit_id}").status_code == 403


def test_provision_is_idempotent_and_creates_a_realm(keycloak):
    doc = json.loads(kcserver.REALM_FILE.read_text(encoding="utf-8"))
    report = provision(keycloak.url, keycloak.admin_user, keycloak.admin_password, doc, demo_users=True)
    assert "realm" in report.updated and "hie-api" in report.updated["client"]
    doc["realm"] = "qingyuan-provisioned"
    report = provision(keycloak.url, keycloak.admin_user, keycloak.admin_password, doc, demo_users=True)
    assert report.created.get("realm") == ["qingyuan-provisioned"]
    issuer = f"{keycloak.url}/realms/qingyuan-provisioned"
    token = login(issuer, "hie-cli", username="doctor.ttwsy", password=kcserver.DEMO_PASSWORD)["access_token"]
    claims = json.loads(__import__("base64").urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["facility"] == "TTWSY" and claims["aud"] == "hie-api"
    assert "township-doctor" in claims["realm_access"]["roles"]


def test_introspection_refuses_a_token_after_logout(keycloak, postgres_url, client):
    from keycloak import KeycloakOpenID

    from hie_server.operations.imaging import imaging_router
    from imaging import ImagingSettings, OrthancClient

    store = SqlStore(StoreSettings(database_url=postgres_url, pool_size=2))
    settings = HieSettings(
        auth=AuthSettings(
            issuer=keycloak.issuer, introspection=True, client_secret="dev-only-hie-api-secret"
        ),
        imaging=ImagingSettings(orthanc_url="http://127.0.0.1:9", gate_secret="gate-secret-kc"),
    )
    orthanc = OrthancClient("http://127.0.0.1:9", None, None)  # never asked: the gate only decides
    app = create_app(settings, store, root_routers=[imaging_router(settings, store, orthanc)])
    tokens = login(keycloak.issuer, "hie-cli", username="doctor.ttwsy", password=kcserver.DEMO_PASSWORD)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    # the DICOMweb gate (nginx's auth_request) asks the introspection endpoint as /fhir does
    gate = {**bearer, "X-Original-URI": "/dicom-web/studies/1.2.3", "X-Hie-Gate-Secret": "gate-secret-kc"}
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            assert c.get("/fhir/Patient/TTWSY-A", headers=bearer).status_code == 200
            r = c.get("/_internal/dicomweb-auth", headers=gate)  # authenticated; study not indexed
            assert r.status_code == 403 and "imaging-not-indexed" in r.text
            KeycloakOpenID(server_url=keycloak.url, realm_name="qingyuan", client_id="hie-cli").logout(
                tokens["refresh_token"]
            )
            r = c.get("/fhir/Patient/TTWSY-A", headers=bearer)
            assert r.status_code == 401 and "no longer active" in r.text
            r = c.get("/_internal/dicomweb-auth", headers=gate)
            assert r.status_code == 401 and "no longer active" in r.text
    finally:
        app.state.audit_writer.close()
        store.close()
