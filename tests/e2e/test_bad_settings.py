"""A bad `HIE_*` value stops a real `hie` process with one red line naming the variable and
the reason, exit 1, no traceback; a secret's value is named but never printed."""

from __future__ import annotations

from e2e_harness import free_ports, hie


def test_serve_refuses_a_bad_mllp_processes_value() -> None:
    http_port, mllp_port = free_ports(2)
    result = hie("serve", "--port", str(http_port), "--mllp-port", str(mllp_port),
                 "--database-url", "memory://", env={"HIE_MLLP__PROCESSES": "0"}, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "invalid setting HIE_MLLP__PROCESSES=0: Input should be greater than or equal to 1"
    )
    assert "Traceback" not in result.stdout + result.stderr


def test_secret_value_is_not_printed() -> None:
    result = hie("db", "upgrade", "--database-url", "memory://",
                 env={"HIE_IMAGING": '{"gate_secret": 987654321}', "HIE_HTTP__PORT": "-1"}, timeout=120)
    assert result.returncode == 1
    assert "invalid setting HIE_IMAGING__GATE_SECRET: Input should be a valid string" in result.stderr
    assert "invalid setting HIE_HTTP__PORT=-1: Input should be greater than or equal to 1" in result.stderr
    assert "987654321" not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
