"""MLLP over TLS with client certificates (certificates made with the openssl CLI)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.hl7v2.ack import read_ack
from adapters.ingest import IngestService
from adapters.mllp.client import MllpClient, MllpError
from adapters.mllp.server import MllpServer
from adapters.settings import MllpSettings
from ehr_store import MemoryStore, StoreSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "adapters"))
import hl7_messages as M


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    d = tmp_path_factory.mktemp("pki")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        cwd=d,
    )
    for name in ("server", "client"):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            cwd=d,
        )
        (d / f"{name}.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.pem",
            cwd=d,
        )
    return d


async def test_tls_with_client_certificates(pki: Path) -> None:
    settings = MllpSettings(
        port=0, tls_cert=pki / "server.pem", tls_key=pki / "server.key", tls_client_ca=pki / "ca.pem"
    )
    server = MllpServer(IngestService(MemoryStore(StoreSettings(database_url="memory://"))), settings)
    await server.start()
    try:

        def with_cert() -> str:
            with MllpClient(
                "127.0.0.1",
                server.port,
                tls=True,
                ca_file=pki / "ca.pem",
                cert_file=pki / "client.pem",
                key_file=pki / "client.key",
                timeout=10,
            ) as c:
                return read_ack(c.send(M.ADT_A01_FULL.encode())[0]).code

        def without_cert() -> None:
            with MllpClient("127.0.0.1", server.port, tls=True, ca_file=pki / "ca.pem", timeout=10) as c:
                c.send(M.ADT_A01_FULL.encode())

        assert await asyncio.to_thread(with_cert) == "AA"
        with pytest.raises(MllpError):
            await asyncio.to_thread(without_cert)
    finally:
        await server.stop()
