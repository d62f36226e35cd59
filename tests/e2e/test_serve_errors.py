"""`hie serve` failing to start says why in one line (no traceback): here the MLLP port is taken."""

from __future__ import annotations

import socket
from pathlib import Path

from e2e_harness import free_ports, hie


def test_taken_mllp_port_is_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hie.db'}"
    assert hie("db", "upgrade", "--database-url", url).returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        mllp_port = taken.getsockname()[1]
        (http_port,) = free_ports(1)
        result = hie("serve", "--port", str(http_port), "--mllp-port", str(mllp_port),
                     "--database-url", url, timeout=120)
    assert result.returncode == 1
    assert "mllp could not start" in result.stderr and "address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_refuses_a_taken_http_port(tmp_path: Path) -> None:
    """A second `make demo` must not report another server's counts as its own."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (mllp_port,) = free_ports(1)
        database = f"sqlite:///{tmp_path / 'demo.db'}"
        result = hie("demo", "--exit", "--port", str(port), "--mllp-port", str(mllp_port),
                     "--database-url", database, "--workdir", str(tmp_path / "feed"), timeout=300)
    assert result.returncode == 1
    assert f"HTTP port 127.0.0.1:{port} is in use" in result.stdout + result.stderr
    assert "server ready" not in result.stdout
