"""A FHIR client nobody here wrote (fhirpy, sync) against a real `hie serve` process.

Starts `hie db upgrade` and `hie serve` on a free loopback port with a temporary SQLite
database, waits for `GET /fhir/metadata` (the readiness probe), then creates, reads,
searches (following `next` links) and updates through fhirpy unchanged.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fhirpy import SyncFHIRClient

SYSTEM = "urn:oid:1.2.156.112604.1.1"
HIE = str(Path(sys.executable).with_name("hie"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("hie") / "hie.db"
    env = {**os.environ, "HIE_DATABASE_URL": f"sqlite:///{db}"}
    subprocess.run([HIE, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)
    port = _free_port()
    proc = subprocess.Popen(
        [HIE, "serve", "--host", "127.0.0.1", "--port", str(port), "--mllp-port", str(_free_port())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/fhir"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                output = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"hie serve exited with {proc.returncode}:\n{output}")
            try:
                if httpx.get(f"{base}/metadata", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("hie serve did not become ready within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def client(base_url: str) -> SyncFHIRClient:
    return SyncFHIRClient(base_url)


def test_create_read_update(client: SyncFHIRClient) -> None:
    patient = client.resource(
        "Patient",
        identifier=[{"system": SYSTEM, "value": "FP-0001"}],
        name=[{"family": "Chen", "given": ["Xiaoming"]}],
        gender="male",
        birthDate="1975-03-02",
    )
    patient.save()
    assert patient.id and patient["meta"]["versionId"] == "1"

    read = client.reference("Patient", patient.id).to_resource()
    assert read["name"][0]["family"] == "Chen"

    read["gender"] = "other"
    read.save()
    again = client.reference("Patient", patient.id).to_resource()
    assert again["gender"] == "other" and again["meta"]["versionId"] == "2"


def test_search_and_follow_pages(client: SyncFHIRClient) -> None:
    for i in range(5):
        client.resource(
            "Patient",
            identifier=[{"system": SYSTEM, "value": f"FP-1{i:03d}"}],
            name=[{"family": "Lin", "given": [f"Mei{i}"]}],
            gender="female",
        ).save()
    found = client.resources("Patient").search(identifier=f"{SYSTEM}|FP-1002").fetch()
    assert [p["identifier"][0]["value"] for p in found] == ["FP-1002"]
    every = client.resources("Patient").search(family="Lin").limit(2).fetch_all()
    # `hie serve` links Patients written through the API: each source has its resident record
    golden = [p for p in every if any(t.get("code") == "golden" for t in p.get("meta", {}).get("tag", []))]
    sources = [p for p in every if p not in golden]
    assert sorted(p["identifier"][0]["value"] for p in sources) == [f"FP-1{i:03d}" for i in range(5)]
    assert len(golden) == 5 and all(any(x["type"] == "refer" for x in p["link"]) for p in sources)


def test_observation_keeps_decimal_precision(client: SyncFHIRClient, base_url: str) -> None:
    patient = client.resource("Patient", name=[{"family": "Huang"}])
    patient.save()
    raw = (
        b'{"resourceType":"Observation","status":"final","code":{"text":"Hb"},'
        b'"subject":{"reference":"Patient/' + patient.id.encode() + b'"},"valueQuantity":{"value":13.50}}'
    )
    r = httpx.post(f"{base_url}/Observation", content=raw, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 201
    assert b"13.50" in httpx.get(r.headers["location"]).content
    found = client.resources("Observation").search(subject=f"Patient/{patient.id}").fetch()
    assert len(found) == 1
