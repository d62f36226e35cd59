"""Who may write over MLLP: a feed writes only as its own facility (issue 6), decided per
connection from its verified TLS client certificate.

`mllp_gate(auth)` is the `SenderGate` the composition root gives `adapters.MllpServer`:
- a verified client certificate names its facility through `auth.mllp_certificates` (subject
  CN or a subjectAltName DNS/URI/email value -> facility code) or a SAN URI
  `urn:qyhie:facility:<code>`; every MSH-4.1 in each frame must then be that facility;
- with an issuer configured, a certificate naming no facility writes nothing, and a connection
  without a client certificate writes only as `auth.mllp_plain` allows (`refuse` by default,
  `loopback`, `any`);
- without an issuer (the loopback demo) other connections are not restricted.
A refused frame is archived as rejected and answered AR (`IngestService.reject`).

May import: the standard library, `hie_server.auth.*`.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable
from typing import Any

from hie_server.auth.classify import hl7_sending_facilities
from hie_server.auth.settings import AuthSettings

log = logging.getLogger(__name__)
FACILITY_URI = "urn:qyhie:facility:"
SAN_KINDS = ("DNS", "URI", "email")

FrameCheck = Callable[[bytes], str | None]


def certificate_names(cert: dict[str, Any]) -> list[str]:
    """The names a verified certificate goes by: subject CN(s), then subjectAltName DNS, URI
    and email values (`ssl.SSLSocket.getpeercert()` shape, RFC 5280 §4.1.2.6, §4.2.1.6)."""
    names = [value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]
    names += [value for kind, value in cert.get("subjectAltName", ()) if kind in SAN_KINDS]
    return names


def certificate_facility(cert: dict[str, Any], mapping: dict[str, str]) -> tuple[str | None, str]:
    """(facility code or None, the certificate name that decided it / the first name).

    An entry of `mapping` wins over a SAN `urn:qyhie:facility:<code>`."""
    names = certificate_names(cert)
    for name in names:
        if name in mapping:
            return mapping[name], name
    for name in names:
        if name.startswith(FACILITY_URI) and len(name) > len(FACILITY_URI):
            return name[len(FACILITY_URI) :], name
    return None, names[0] if names else "(no name)"


def is_loopback(peer: str) -> bool:
    """Whether `host:port` (or `[v6]:port`, `v6:port`) is a loopback address."""
    host = peer.rsplit(":", 1)[0].strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def own_facility_check(facility: str, name: str) -> FrameCheck:
    """Every MSH-4.1 in the frame must be `facility` (the connection's certificate `name`)."""

    def check(raw: bytes) -> str | None:
        senders = set(hl7_sending_facilities(raw))
        if senders == {facility}:
            return None
        return (
            f"MSH-4 {_listed(senders)} is not this connection's facility {facility!r} "
            f"(client certificate {name!r}); rule feed-own-facility"
        )

    return check


def refuse_all(reason: str) -> FrameCheck:
    """A check refusing every frame with `reason`."""
    return lambda raw: reason


def accept_all(raw: bytes) -> str | None:
    """The check of an unrestricted connection (no issuer, no mapped certificate)."""
    return None


def mllp_gate(auth: AuthSettings) -> Callable[[str, dict[str, Any] | None], FrameCheck]:
    """The per-connection decision (see module docstring): (peer, verified certificate) -> check."""

    def for_connection(peer: str, cert: dict[str, Any] | None) -> FrameCheck:
        if cert:
            facility, name = certificate_facility(cert, auth.mllp_certificates)
            if facility is not None:
                log.info("MLLP connection from %s: certificate %s writes as %s", peer, name, facility)
                return own_facility_check(facility, name)
            if auth.enabled:
                log.warning("MLLP connection from %s: certificate %s names no facility", peer, name)
                return refuse_all(
                    f"client certificate {name!r} is not mapped to a facility "
                    "(HIE_AUTH__MLLP_CERTIFICATES); rule feed-certificate"
                )
            return accept_all
        if not auth.enabled or auth.mllp_plain == "any":
            return accept_all
        if auth.mllp_plain == "loopback" and is_loopback(peer):
            return accept_all
        log.warning("MLLP connection from %s without a client certificate: writes refused", peer)
        return refuse_all(
            "this exchange requires a TLS client certificate for MLLP writes "
            f"(HIE_AUTH__MLLP_PLAIN={auth.mllp_plain}); rule feed-certificate"
        )

    return for_connection


def _listed(senders: Iterable[str]) -> str:
    return ", ".join(repr(s) for s in sorted(senders)) or "(no MSH)"
