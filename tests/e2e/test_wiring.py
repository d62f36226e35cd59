"""The composition root from outside: `hie db upgrade` loads the shipped terminology (once),
`hie serve` translates local codes of a feed sent with `hie send` over MLLP, serves the
terminology and EMPI operations, and `Patient?identifier=<MRN>` finds only the source
Patient, which leads to its resident record.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from e2e_harness import hie, start_server

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SAMPLES = Path(os.environ.get("HIE_SAMPLES_DIR", REPO / ".." / "shared" / "samples"))
FEED = SAMPLES / "feed-small"
LOINC = "http://loinc.org"


def test_serve_translates_codes_and_serves_empi_operations(tmp_path: Path) -> None:
    if not (FEED / "truth.jsonl").exists():
        pytest.fail(f"shared sample feed not found at {FEED} (set HIE_SAMPLES_DIR)")
    env = {"HIE_INGEST__DEFAULT_ASSUME_OFFSET": "+08:00"}
    server = start_server(tmp_path, env)  # runs `hie db upgrade` first
    try:
        again = hie("db", "upgrade", "--database-url", server.database_url, env=env)
        assert again.returncode == 0 and "terminology content loaded" not in again.stdout, again.stdout
        sent = hie(
            "send", "--host", "127.0.0.1", "--port", str(server.mllp_port), str(FEED / "feeds" / "TTWSY")
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        with httpx.Client(
            base_url=server.base, timeout=30, headers={"Accept": "application/fhir+json"}
        ) as fhir:
            hgb = fhir.get("/Observation", params={"code": f"{LOINC}|718-7", "_count": "5"}).json()
            assert hgb.get("total", len(hgb.get("entry", []))) > 0, hgb
            codes = hgb["entry"][0]["resource"]["code"]["coding"]
            assert codes[0]["code"] == "HGB" and codes[1] == {
                "system": LOINC,
                "code": "718-7",
                "display": "Hemoglobin [Mass/volume] in Blood",
            }
            lookup = fhir.get("/CodeSystem/$lookup", params={"system": LOINC, "code": "718-7"})
            assert lookup.status_code == 200, lookup.text
            mrn = hgb["entry"][0]["resource"]["subject"]["reference"].split("-", 1)[1]
            found = fhir.get("/Patient", params={"identifier": mrn}).json()
            assert len(found["entry"]) == 1, found  # the source Patient only, not the resident record
            source = found["entry"][0]["resource"]
            golden = next(x["other"]["reference"] for x in source["link"] if x["type"] == "refer")
            everything = fhir.get(f"/{golden}/$everything", params={"_count": "50"})
            assert everything.status_code == 200, everything.text
            types = {e["resource"]["resourceType"] for e in everything.json()["entry"]}
            assert {"Patient", "Observation", "DiagnosticReport"} <= types
        unmapped = hie(
            "terminology", "unmapped", "--database-url", server.database_url, env={**env, "COLUMNS": "250"}
        )
        assert unmapped.returncode == 0 and "DX-CHEST" in unmapped.stdout, unmapped.stdout
    finally:
        server.stop()


def test_capability_statement_lists_every_routed_operation(tmp_path: Path) -> None:
    server = start_server(tmp_path, {})
    try:
        statement = httpx.get(f"{server.base}/metadata", timeout=30).json()
        root = server.base.removesuffix("/fhir")
        paths = httpx.get(f"{root}/openapi.json", timeout=30).json()["paths"]
    finally:
        server.stop()
    rest = statement["rest"][0]
    listed = {("", op["name"]) for op in rest.get("operation", [])}
    for resource in rest["resource"]:
        listed |= {(resource["type"], op["name"]) for op in resource.get("operation", [])}
    routed = set()
    for path in paths:
        parts = path.removeprefix("/fhir/").split("/")
        ops = [p[1:] for p in parts if p.startswith("$")]
        if path.startswith("/fhir/") and ops and ops[0] not in ("export-poll-status", "export-file"):
            routed.add((parts[0] if not parts[0].startswith("$") else "", ops[0]))
    assert routed, sorted(paths)
    assert routed <= listed, f"routed but not in the CapabilityStatement: {sorted(routed - listed)}"
    assert {("", "surveillance-cases"), ("", "empi-review"), ("Appointment", "book")} <= routed
