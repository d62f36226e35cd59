"""Settings composition and the `hie` command line (`hie db upgrade`, `hie serve` refusals)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hie_server.cli import app
from hie_server.settings import HieSettings, with_overrides

runner = CliRunner()


def test_settings_env_and_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIE_DATABASE_URL", "sqlite:///alias.db")
    monkeypatch.setenv("HIE_HTTP__PORT", "9090")
    monkeypatch.setenv("HIE_STORE__POOL_SIZE", "3")
    settings = HieSettings()
    assert settings.store.database_url == "sqlite:///alias.db"
    assert settings.http.port == 9090 and settings.store.pool_size == 3
    monkeypatch.setenv("HIE_STORE__DATABASE_URL", "sqlite:///nested.db")
    assert HieSettings().store.database_url == "sqlite:///nested.db"


def test_settings_defaults_and_flag_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HIE_DATABASE_URL", "HIE_STORE__DATABASE_URL", "HIE_HTTP__HOST", "HIE_HTTP__PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = HieSettings()
    assert (settings.http.host, settings.http.port, settings.http.base_path) == ("127.0.0.1", 8080, "/fhir")
    assert settings.store.database_url == "sqlite:///var/hie.db"
    changed = with_overrides(settings, host="::1", port=8181, database_url="sqlite:///other.db")
    assert (changed.http.host, changed.http.port, changed.store.database_url) == (
        "::1",
        8181,
        "sqlite:///other.db",
    )
    assert settings.http.port == 8080


def test_db_upgrade_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hie.db'}"
    first = runner.invoke(app, ["db", "upgrade", "--database-url", url])
    assert first.exit_code == 0, first.output
    assert "revision" in first.output
    again = runner.invoke(app, ["db", "upgrade", "--database-url", url])
    assert again.exit_code == 0, again.output


def test_serve_refuses_a_database_without_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = runner.invoke(app, ["serve", "--port", "1", "--database-url", url])
    assert result.exit_code == 1
    assert "hie db upgrade" in result.output


def test_serve_refuses_non_loopback_without_identity_provider(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--database-url", "memory://"])
    assert result.exit_code == 1
    assert "loopback" in result.output


class _RecordingService:
    """A background service that records its lifecycle and proves it shares the loop."""

    name = "recorder"

    def __init__(self) -> None:
        self.events: list[str] = []

    async def start(self) -> None:
        self.events.append("start")

    async def stop(self) -> None:
        self.events.append("stop")


async def test_runtime_serves_with_background_services_until_stopped() -> None:
    import asyncio
    import socket

    import httpx

    from ehr_store import MemoryStore
    from hie_server.runtime import serve
    from hie_server.settings import HttpSettings

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = HieSettings(http=HttpSettings(port=port))
    service, stop = _RecordingService(), asyncio.Event()
    task = asyncio.create_task(serve(settings, MemoryStore(), extra_services=[service], stop=stop))
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            try:
                r = await client.get(f"http://127.0.0.1:{port}/fhir/metadata")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    assert r.status_code == 200
    assert service.events == ["start"]
    stop.set()
    await asyncio.wait_for(task, 10)
    assert service.events == ["start", "stop"]


def test_demo_port_check_refuses_a_listener_but_not_time_wait() -> None:
    """`hie demo` refuses a port another server listens on, but not one whose last connection
    the server closed (TIME_WAIT): servers bind with SO_REUSEADDR, and so does the probe."""
    import socket

    import typer

    from hie_server.cli_ops import _require_free_port

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    with pytest.raises(typer.Exit):
        _require_free_port("127.0.0.1", port, "HTTP")
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    served.close()  # the server closes first: its side of the connection waits in TIME_WAIT
    client.close()
    listener.close()
    _require_free_port("127.0.0.1", port, "HTTP")  # free again: no exit
