"""`hie serve --mllp-processes N` (HIE_MLLP__PROCESSES) on PostgreSQL, from outside: worker
processes share the MLLP port, a feed sent over several connections at once lands whole,
another server cannot take the shared port, SIGTERM stops the workers; SQLite refuses."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from e2e_harness import (
    HIE,
    Server,
    expected_from_feed,
    feed_folders,
    free_ports,
    hie,
    search,
    start_server,
    total,
)

pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _worker_pids(server: Server) -> list[int]:
    found = re.search(r"(\d+) more MLLP process\(es\) on port \d+: pids \[([\d, ]+)\]", server.log_tail())
    assert found is not None, server.log_tail()
    return [int(p) for p in found.group(2).split(",")]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory,
           make_postgres_database: Callable[[], str]) -> Iterator[tuple[Server, Path, list[str]]]:
    work = tmp_path_factory.mktemp("mllp-processes")
    feed = work / "feed"
    made = hie("synth", str(feed), "--residents", "30", "--seed", "2027")
    assert made.returncode == 0, made.stderr
    server = start_server(work, {"HIE_INGEST__DEFAULT_ASSUME_OFFSET": "+08:00"}, make_postgres_database(),
                          extra_args=("--mllp-processes", "3"))
    try:
        # one `hie send` (one connection) per facility, all at once: the kernel spreads them
        send = [*HIE, "send", "--host", "127.0.0.1", "--port", str(server.mllp_port)]
        senders = [subprocess.Popen([*send, folder], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
                   for folder in feed_folders(feed)]
        outputs = [p.communicate(timeout=600)[0].decode(errors="replace") for p in senders]
        yield server, feed, outputs
    finally:
        try:
            pids = _worker_pids(server) if server.process.poll() is None else []
        finally:
            server.stop()
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)


def test_the_feed_sent_on_many_connections_lands_whole(shared: tuple[Server, Path, list[str]]) -> None:
    server, feed, outputs = shared
    assert len(outputs) >= 3
    pids = _worker_pids(server)
    assert len(pids) == 2 and all(_alive(p) for p in pids)
    exp = expected_from_feed(feed)
    with httpx.Client(base_url=server.base, timeout=30) as client:
        missing = [m for m in sorted(exp.mrns) if not search(client, "/Patient", identifier=m).get("entry")]
        assert not missing, f"no Patient for MRNs {missing[:10]}\n{server.log_tail()}"
        assert total(client, "Observation") == exp.observations, "\n".join(outputs)[-2000:]
        assert total(client, "Immunization") == exp.types["VXU^V04"]


def test_another_server_cannot_take_the_shared_port(shared: tuple[Server, Path, list[str]],
                                                     make_postgres_database: Callable[[], str]) -> None:
    server, _feed, _ = shared
    url = make_postgres_database()
    assert hie("db", "upgrade", "--database-url", url).returncode == 0
    (http_port,) = free_ports(1)
    result = hie("serve", "--port", str(http_port), "--mllp-port", str(server.mllp_port),
                 "--mllp-processes", "2", "--database-url", url, timeout=120)
    assert result.returncode == 1
    assert "mllp could not start" in result.stderr and "address already in use" in result.stderr.lower()
    assert f"127.0.0.1:{server.mllp_port}" in result.stderr


def test_sigterm_stops_the_worker_processes(tmp_path: Path,
                                            make_postgres_database: Callable[[], str]) -> None:
    server = start_server(tmp_path, {}, make_postgres_database(), extra_args=("--mllp-processes", "2"))
    try:
        pids = _worker_pids(server)
        assert len(pids) == 1 and _alive(pids[0])
    finally:
        server.stop()
    assert server.process.returncode == 0, server.log_tail()  # services stopped, then a normal exit
    assert "stopped on SIGTERM" in server.log_tail()
    deadline = time.monotonic() + 30
    while _alive(pids[0]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(pids[0]), "the MLLP worker outlived hie serve"


def test_more_processes_on_sqlite_is_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hie.db'}"
    assert hie("db", "upgrade", "--database-url", url).returncode == 0
    http_port, mllp_port = free_ports(2)
    result = hie("serve", "--port", str(http_port), "--mllp-port", str(mllp_port), "--mllp-processes", "2",
                 "--database-url", url, timeout=120)
    assert result.returncode == 1
    assert "2 MLLP processes (--mllp-processes / HIE_MLLP__PROCESSES) need PostgreSQL" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_worker_stops_when_hie_serve_is_killed(tmp_path: Path,
                                                 make_postgres_database: Callable[[], str]) -> None:
    server = start_server(tmp_path, {}, make_postgres_database(), extra_args=("--mllp-processes", "2"))
    try:
        (pid,) = _worker_pids(server)
        server.process.kill()  # no chance to stop its services
        server.process.wait()
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(pid), "an orphaned MLLP worker kept serving"
    finally:
        server.stop()


def test_sigterm_while_a_dead_worker_is_being_replaced(tmp_path: Path,
                                                      make_postgres_database: Callable[[], str]) -> None:
    """The replacement a restart is still waiting for is stopped too; hie serve exits."""
    server = start_server(tmp_path, {}, make_postgres_database(), extra_args=("--mllp-processes", "2"))
    try:
        (pid,) = _worker_pids(server)
        os.kill(pid, 9)
        deadline = time.monotonic() + 10
        while "starting another" not in server.log_tail() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "starting another" in server.log_tail()
        time.sleep(0.3)  # the replacement is importing, not ready yet
        server.process.terminate()
        server.process.wait(timeout=60)
        assert server.process.returncode == 0, server.log_tail()
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{server.mllp_port}"], capture_output=True,
                                   text=True, check=False).stdout
        assert not listening.strip(), f"something still listens on the MLLP port:\n{listening}"
    finally:
        server.stop()
