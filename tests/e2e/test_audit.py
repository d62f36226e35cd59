"""`hie serve` audits by default (issue 6 "every record access in the e2e run produces an
AuditEvent"): a feed sent over MLLP, then a read, a search and `$everything` through the FHIR
API, each found as an AuditEvent by the local operator (loopback demo mode: no issuer, agent
`anonymous`), naming the records it touched.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_harness import hie, start_server

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SAMPLES = Path(os.environ.get("HIE_SAMPLES_DIR", REPO / ".." / "shared" / "samples"))
FEED = SAMPLES / "feed-small"


def _events(fhir: httpx.Client, params: dict[str, str], want: int = 1) -> list[dict[str, Any]]:
    """AuditEvents matching `params`, waiting up to 10 s for the background writer."""
    deadline = time.monotonic() + 10
    while True:
        found = fhir.get("/AuditEvent", params={**params, "_count": "100"})
        assert found.status_code == 200, found.text
        events = [e["resource"] for e in found.json().get("entry", [])]
        if len(events) >= want or time.monotonic() > deadline:
            return events
        time.sleep(0.2)


def test_record_accesses_through_the_api_produce_audit_events(tmp_path: Path) -> None:
    if not (FEED / "truth.jsonl").exists():
        pytest.fail(f"shared sample feed not found at {FEED} (set HIE_SAMPLES_DIR)")
    env = {"HIE_INGEST__DEFAULT_ASSUME_OFFSET": "+08:00"}
    server = start_server(tmp_path, env)
    try:
        sent = hie(
            "send", "--host", "127.0.0.1", "--port", str(server.mllp_port), str(FEED / "feeds" / "TTWSY")
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        with httpx.Client(
            base_url=server.base, timeout=30, headers={"Accept": "application/fhir+json"}
        ) as fhir:
            patients = fhir.get("/Patient", params={"_count": "3"}).json()
            pid = patients["entry"][0]["resource"]["id"]
            assert fhir.get(f"/Patient/{pid}").status_code == 200
            observations = fhir.get("/Observation", params={"subject": f"Patient/{pid}"})
            assert observations.status_code == 200, observations.text
            assert fhir.get(f"/Patient/{pid}/$everything").status_code == 200

            reads = _events(fhir, {"entity": f"Patient/{pid}", "subtype": "read"})
            assert reads, server.log_tail()
            read = reads[0]
            assert read["action"] == "R" and read["outcome"] == "0"
            assert read["agent"][0]["who"]["display"] == "anonymous"
            searches = _events(fhir, {"subtype": "search"})
            queries = {
                ent.get("description")
                for ev in searches
                for ent in ev.get("entity", [])
                if ent["role"]["code"] == "24"
            }
            assert "GET /fhir/Observation" in queries and "GET /fhir/Patient" in queries, queries
            listed = {
                ent["what"]["reference"] for ev in searches for ent in ev.get("entity", []) if "what" in ent
            }
            assert {f"Patient/{e['resource']['id']}" for e in patients["entry"]} <= listed
            assert _events(fhir, {"entity": f"Patient/{pid}", "subtype": "everything"})
    finally:
        server.stop()
