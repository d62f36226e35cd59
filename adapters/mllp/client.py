"""A blocking MLLP client (HL7 v2.5 Appendix C.4) used by `hie send`, the tests and bench.

`send(message)` writes one frame and reads the ACK; in enhanced mode (MSH-15/16 valued)
it also reads the application ACK when MSH-16 says one will come (AL; ER/SU: waits a
short grace period because it depends on the outcome).

May import: the standard library, `adapters.hl7v2`.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from types import TracebackType

from adapters.hl7v2.ack import read_ack
from adapters.hl7v2.framing import FrameTooLarge, MllpDecoder, frame
from adapters.hl7v2.header import read_header


class MllpError(Exception):
    """The connection failed or closed before an ACK arrived."""


class MllpClient:
    """One MLLP connection. Use as a context manager."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 2575,
        *,
        tls: bool = False,
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        timeout: float = 30.0,
        grace: float = 0.5,
    ) -> None:
        self.host, self.port, self.timeout, self.grace = host, port, timeout, grace
        self._ssl: ssl.SSLContext | None = None
        if tls:
            self._ssl = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
            if cert_file:
                self._ssl.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
        self._sock: socket.socket | None = None
        self._decoder = MllpDecoder()
        self._pending: list[bytes] = []

    def connect(self) -> None:
        """Raises: MllpError (cannot connect)."""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = self._ssl.wrap_socket(sock, server_hostname=self.host) if self._ssl else sock
        except OSError as exc:
            raise MllpError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> MllpClient:
        self.connect()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def send(self, message: bytes) -> list[bytes]:
        """Send one message; return its ACK frame(s): [ACK] or [accept ACK, application ACK].
        Raises: MllpError."""
        if self._sock is None:
            self.connect()
        assert self._sock is not None
        try:
            self._sock.sendall(frame(message))
            acks = [self._read(self.timeout)]
            header = read_header(message)
            if header.enhanced_mode and read_ack(acks[0]).code == "CA":
                cond = (header.application_ack_type or "AL").upper()
                if cond == "AL":
                    acks.append(self._read(self.timeout))
                elif cond in ("ER", "SU"):
                    more = self._read_optional(self.grace)
                    if more is not None:
                        acks.append(more)
            return acks
        except OSError as exc:
            raise MllpError(f"connection to {self.host}:{self.port} failed: {exc}") from exc

    def _read(self, timeout: float) -> bytes:
        found = self._read_optional(timeout)
        if found is None:
            raise MllpError("no ACK within the timeout")
        return found

    def _read_optional(self, timeout: float) -> bytes | None:
        assert self._sock is not None
        self._sock.settimeout(timeout)
        while not self._pending:
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                return None
            if not data:
                raise MllpError("connection closed before the ACK")
            self._pending += [f for f in self._decoder.feed(data) if not isinstance(f, FrameTooLarge)]
        return self._pending.pop(0)
