"""`hie demo --exit`: the README's run command end to end (schema, server, synthetic feed over
MLLP, summary through the FHIR API), on free ports with a temporary SQLite database."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from e2e_harness import free_ports, hie

pytestmark = pytest.mark.slow


def _row(output: str, label: str) -> str:
    found = re.search(rf"{re.escape(label)}\s*│\s*([^│]+?)\s*│", output)
    assert found, f"no '{label}' row in the demo summary:\n{output[-3000:]}"
    return found.group(1)


def test_demo_runs_the_main_job_and_reports_what_the_truth_file_expects(tmp_path: Path) -> None:
    port, mllp_port = free_ports(2)
    run = hie("demo", "--residents", "25", "--seed", "9", "--port", str(port),
              "--mllp-port", str(mllp_port), "--database-url", f"sqlite:///{tmp_path / 'demo.db'}",
              "--workdir", str(tmp_path / "var"), "--exit", env={"COLUMNS": "200"}, timeout=900)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    truth = [json.loads(line) for line in
             (tmp_path / "var" / "feed-seed9-25" / "truth.jsonl").read_text(encoding="utf-8").splitlines()]
    accept = sum(1 for r in truth if r["expect"].startswith("accept"))
    observations = sum(len(r.get("observations", [])) for r in truth)
    assert _row(output, "accepted (AA/CA)") == f"{accept}  (expected {accept})"
    reject = len(truth) - accept
    assert _row(output, "rejected (AE/AR/CE/CR)") == f"{reject}  (expected {reject})"
    assert _row(output, "residents in feed") == "25"
    assert int(_row(output, "Observation")) == observations
    assert 0 < int(_row(output, "resident records")) <= int(_row(output, "Patient"))
