"""`hie audit break-glass`: break-glass accesses made through the guarded API (real tokens from
a local issuer, SQLite store) are listed for admins, with who, where, which resident and why."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ehr_store import StoreSettings, open_store
from hie_server.app import create_app
from hie_server.auth import AuthSettings
from hie_server.auth.report import break_glass_accesses
from hie_server.cli import app as hie
from hie_server.cli_auth import parse_since
from hie_server.settings import HieSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from auth_world import seed

DOCTOR = {
    "preferred_username": "doctor.ttwsy",
    "realm_access": {"roles": ["township-doctor"]},
    "facility": "TTWSY",
    "county": "441821",
    "sub": "u-doc",
}
REASON = "unconscious at the ER, no relatives"


def test_break_glass_accesses_are_reported(local_issuer, sqlite_url: str) -> None:
    store = open_store(StoreSettings(database_url=sqlite_url))
    try:
        seed(store)
        settings = HieSettings(auth=AuthSettings(issuer=local_issuer.issuer, jwks_min_refresh_seconds=0))
        app = create_app(settings, store)
        headers = {"Authorization": f"Bearer {local_issuer.token(**DOCTOR)}"}
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.get("/fhir/Patient/TTWSY-A", headers=headers).status_code == 200  # own resident
            opened = client.get("/fhir/Patient/QYRMYY-B", headers={**headers, "X-Break-Glass-Reason": REASON})
            assert opened.status_code == 200
            assert client.get("/fhir/Observation/obs-B-QY", headers=headers).status_code == 200
        app.state.audit_writer.close()
        rows = break_glass_accesses(store)
        assert [(r.user, r.facility, r.patients, r.outcome) for r in rows] == [
            ("doctor.ttwsy", "TTWSY", ("Patient/QYRMYY-B",), "0"),
            ("doctor.ttwsy", "TTWSY", ("Patient/QYRMYY-B",), "0"),
        ]
        assert (
            rows[0].reason == REASON and rows[0].interaction == "read" and "township-doctor" in rows[0].roles
        )
        assert rows[1].reason.startswith("(break-glass opened earlier)") and REASON in rows[1].reason
        assert break_glass_accesses(store, datetime.now(UTC) + timedelta(minutes=5)) == []
    finally:
        store.close()

    runner = CliRunner()
    listed = runner.invoke(hie, ["audit", "break-glass", "--since", "1h", "--database-url", sqlite_url])
    assert listed.exit_code == 0, listed.output
    assert "doctor.ttwsy@TTWSY" in listed.output and REASON in listed.output
    assert "2 break-glass access(es) by 1 user(s)" in listed.output
    as_json = runner.invoke(hie, ["audit", "break-glass", "--json", "--database-url", sqlite_url])
    assert as_json.exit_code == 0, as_json.output
    first = json.loads(as_json.output.splitlines()[0])
    assert first["patients"] == ["Patient/QYRMYY-B"] and first["reason"] == REASON
    later = runner.invoke(
        hie, ["audit", "break-glass", "--since", "2999-01-01", "--database-url", sqlite_url]
    )
    assert later.exit_code == 0 and "0 break-glass access(es)" in later.output


def test_parse_since() -> None:
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("12h", now) == now - timedelta(hours=12)
    assert parse_since("2026-11-01", now) == datetime.fromisoformat("2026-11-01T00:00+08:00")
    assert parse_since("2026-11-01T08:00Z", now) == datetime(2026, 11, 1, 8, tzinfo=UTC)
    assert parse_since(None, now) is None
    with pytest.raises(typer.BadParameter):
        parse_since("last week", now)
