"""MLLP feeds write only as their own facility: real sockets, real TLS with client
certificates made here (cryptography), the gate of `hie serve` (`mllp_gate`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adapters import IngestService, MllpClient, MllpError, MllpServer, MllpSettings, read_ack
from ehr_store import MemoryStore, StoreSettings
from hie_server.auth import AuthSettings
from hie_server.auth.mllp import certificate_facility, is_loopback, mllp_gate

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "adapters"))
import hl7_messages as M

ISSUER = "https://sso.example.cn/realms/qingyuan"
MAPPING = {"feed-qyrmyy.qyhie.cn": "QYRMYY"}


def _message(facility: str, control_id: str) -> bytes:
    text = M.msg("ADT^A01^ADT_A01", control_id, "EVN|A01|20261002093000+0800", M.PID, M.PV1)
    return text.replace("|HIS|QYRMYY^", f"|HIS|{facility}^", 1).encode()


def _cert(
    path: Path,
    name: str,
    subject_cn: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    sans: list[x509.GeneralName],
    *,
    ca: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    (path / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (path / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("mllp-pki")
    ca = _cert(d, "ca", "qyhie test CA", None, [], ca=True)
    _cert(
        d,
        "server",
        "localhost",
        ca,
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    _cert(d, "qyrmyy", "feed-qyrmyy.qyhie.cn", ca, [])
    _cert(d, "ttwsy", "interface-engine-7", ca, [x509.UniformResourceIdentifier("urn:qyhie:facility:TTWSY")])
    _cert(d, "stranger", "somebody.example.cn", ca, [x509.DNSName("somebody.example.cn")])
    return d


class Running:
    def __init__(self, server: MllpServer, store: MemoryStore, loop: asyncio.AbstractEventLoop) -> None:
        self.server, self.store, self.loop = server, store, loop

    def send(self, pki: Path | None, client: str | None, *messages: bytes) -> list[str]:
        """Send on ONE connection; the ACK code plus the first ERR text of each."""
        tls = pki is not None
        with MllpClient(
            "127.0.0.1",
            self.server.port,
            tls=tls,
            ca_file=pki / "ca.pem" if pki else None,
            cert_file=pki / f"{client}.pem" if pki and client else None,
            key_file=pki / f"{client}.key" if pki and client else None,
            timeout=10,
        ) as c:
            out = []
            for m in messages:
                info = read_ack(c.send(m)[-1])
                out.append(info.code + ("" if not info.errors else f" {info.errors[0][1]}"))
            return out


def _serve(pki: Path | None, auth: AuthSettings) -> Iterator[Running]:
    store = MemoryStore(StoreSettings(database_url="memory://"))
    settings = MllpSettings(port=0)
    if pki is not None:
        settings = MllpSettings(
            port=0, tls_cert=pki / "server.pem", tls_key=pki / "server.key", tls_client_ca=pki / "ca.pem"
        )
    server = MllpServer(IngestService(store), settings, gate=mllp_gate(auth))
    loop = asyncio.new_event_loop()
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield Running(server, store, loop)
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def tls_server(pki: Path) -> Iterator[Running]:
    yield from _serve(pki, AuthSettings(issuer=ISSUER, mllp_certificates=MAPPING))


def test_certificate_writes_only_as_its_facility_and_the_connection_stays_open(
    pki: Path, tls_server: Running
) -> None:
    codes = tls_server.send(
        pki, "qyrmyy", _message("QYRMYY", "G1"), _message("TTWSY", "G2"), _message("QYRMYY", "G3")
    )
    assert codes[0] == "AA" and codes[2] == "AA", codes
    assert codes[1].startswith("AR ") and "not this connection's facility 'QYRMYY'" in codes[1], codes
    with tls_server.store.unit_of_work() as uow:
        rejected = uow.messages.list(status=["rejected"])
    assert [(m.control_id, m.sending_facility, m.ack_code) for m in rejected] == [("G2", "TTWSY", "AR")]
    assert "sender not authorised" in (rejected[0].error or "") and not rejected[0].resources
    assert rejected[0].peer and rejected[0].transport == "mllp"


def test_san_uri_names_the_facility_and_an_unmapped_certificate_writes_nothing(
    pki: Path, tls_server: Running
) -> None:
    assert tls_server.send(pki, "ttwsy", _message("TTWSY", "S1"), _message("QYRMYY", "S2"))[1].startswith(
        "AR "
    )
    assert tls_server.send(pki, "ttwsy", _message("TTWSY", "S3")) == ["AA"]
    refused = tls_server.send(pki, "stranger", _message("QYRMYY", "S4"))
    assert refused[0].startswith("AR ") and "is not mapped to a facility" in refused[0], refused


def test_refused_message_is_not_replayed_to_the_real_sender(pki: Path, tls_server: Running) -> None:
    same = _message("QYRMYY", "R1")
    assert tls_server.send(pki, "ttwsy", same)[0].startswith("AR ")
    assert tls_server.send(pki, "qyrmyy", same) == ["AA"]  # the impostor's AR is not its answer


def test_without_an_issuer_only_mapped_certificates_are_restricted(pki: Path) -> None:
    for running in _serve(pki, AuthSettings(mllp_certificates=MAPPING)):
        assert running.send(pki, "stranger", _message("QYRMYY", "N1")) == ["AA"]
        assert running.send(pki, "qyrmyy", _message("TTWSY", "N2"))[0].startswith("AR ")


def test_plain_connections_with_an_issuer_follow_mllp_plain() -> None:
    for running in _serve(None, AuthSettings(issuer=ISSUER)):
        refused = running.send(None, None, _message("QYRMYY", "P1"), _message("QYRMYY", "P2"))
        assert all(c.startswith("AR ") and "requires a TLS client certificate" in c for c in refused), refused
    for running in _serve(None, AuthSettings(issuer=ISSUER, mllp_plain="loopback")):
        assert running.send(None, None, _message("QYRMYY", "P3")) == ["AA"]
    for running in _serve(None, AuthSettings()):
        assert running.send(None, None, _message("TTWSY", "P4")) == ["AA"]


def test_client_without_certificate_cannot_connect_to_a_client_ca_listener(
    pki: Path, tls_server: Running
) -> None:
    with pytest.raises(MllpError):
        tls_server.send(pki, None, _message("QYRMYY", "C1"))


def test_names_and_addresses() -> None:
    cert = {
        "subject": ((("countryName", "CN"),), (("commonName", "feed-qyrmyy.qyhie.cn"),)),
        "subjectAltName": (("URI", "urn:qyhie:facility:TTWSY"), ("IP Address", "10.0.0.1")),
    }
    assert certificate_facility(cert, MAPPING) == ("QYRMYY", "feed-qyrmyy.qyhie.cn")
    assert certificate_facility(cert, {}) == ("TTWSY", "urn:qyhie:facility:TTWSY")
    assert certificate_facility({"subject": ()}, {}) == (None, "(no name)")
    assert is_loopback("127.0.0.1:5000") and is_loopback("::1:5000") and is_loopback("[::1]:5000")
    assert not is_loopback("10.1.2.3:5000") and not is_loopback("localhost:5000")
