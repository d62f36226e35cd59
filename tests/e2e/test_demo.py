"""`hie demo --exit`: the README's run command end to end (schema, server, synthetic feed over
MLLP, summary through the FHIR API), on free ports with a temporary SQLite database."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from e2e_harness import HIE, free_ports, hie

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
    # a merge retires a resident record only when it empties one: at most one per ADT^A40
    merges = sum(1 for r in truth if r.get("type") == "ADT^A40")
    assert 0 <= int(_row(output, "retired by merges")) <= merges


def test_sigterm_stops_the_demo_and_its_server(tmp_path: Path) -> None:
    """A supervisor's SIGTERM ends `hie demo` like Ctrl-C: its `hie serve` child stops and
    frees the ports. The settings the server ran with are left in demo.env for the CLI."""
    port, mllp_port = free_ports(2)
    demo = subprocess.Popen(
        [*HIE, "demo", "--residents", "5", "--seed", "3", "--port", str(port), "--mllp-port", str(mllp_port),
         "--database-url", f"sqlite:///{tmp_path / 'demo.db'}", "--workdir", str(tmp_path / "var")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert demo.stdout is not None
        lines = []
        for line in demo.stdout:
            lines.append(line)
            if "Ctrl-C to stop" in line:
                break
        assert any("Ctrl-C to stop" in line for line in lines), "".join(lines)[-3000:]
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
    deadline = time.monotonic() + 30
    while True:  # the server child is gone: both ports can be bound again
        try:
            for number in (port, mllp_port):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", number))
            break
        except OSError:
            assert time.monotonic() < deadline, "hie serve still holds the demo's ports after SIGTERM"
            time.sleep(0.5)
    env_file = (tmp_path / "var" / "demo.env").read_text(encoding="utf-8")
    assert "HIE_INGEST__FACILITIES=" in env_file and "HIE_DATABASE_URL=" in env_file
