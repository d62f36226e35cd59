"""A throwaway PostgreSQL cluster for tests, benchmarks and `.ci/run`.

`postgres_admin_url()` gives a superuser URL: `HIE_TEST_POSTGRES_URL` when set, otherwise
a fresh cluster made with Debian's `initdb`/`pg_ctl` in a temporary directory, listening
on 127.0.0.1 on a free port (run as the `postgres` user when we are root). The cluster is
stopped and removed by `ThrowawayCluster.stop()`.

`create_database(admin_url, name)` makes an empty database and returns its URL.

May import: the standard library, sqlalchemy (with psycopg 3).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

__all__ = ["PostgresUnavailable", "ThrowawayCluster", "create_database", "drop_database", "find_pg_bin"]


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL could be reached or started."""


def find_pg_bin() -> Path | None:
    """Directory holding initdb/pg_ctl (newest Debian version first), or None."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ThrowawayCluster:
    """A PostgreSQL cluster in a temporary directory; `start()` returns the superuser URL.

    `durable=False` turns off fsync (tests); benchmarks keep the defaults.
    """

    durable: bool = False
    port: int = 0
    base: Path | None = None
    _run_as: list[str] = field(default_factory=list)

    def _cmd(self, *args: str) -> list[str]:
        return [*self._run_as, *args]

    def start(self) -> str:
        """Create and start the cluster. Raises: PostgresUnavailable."""
        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise PostgresUnavailable("no PostgreSQL server binaries (initdb) found")
        self.base = Path(tempfile.mkdtemp(prefix="hie-pg-"))
        data = self.base / "data"
        if os.geteuid() == 0:
            self._run_as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.base, "postgres", "postgres")
        self.port = _free_port()
        init = self._cmd(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                         "-E", "UTF8", "--no-locale", "--no-sync")
        result = subprocess.run(init, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {result.stderr.strip()[-500:]}")
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base}"
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        start = self._cmd(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(self.base / "log"),
                          "-o", opts, "-w", "-t", "60", "start")
        result = subprocess.run(start, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log_file = self.base / "log"
            log = log_file.read_text(errors="replace")[-800:] if log_file.exists() else ""
            raise PostgresUnavailable(f"pg_ctl start failed: {result.stderr.strip()} {log}")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        """Stop the server and remove its directory (safe to call twice)."""
        if self.base is None:
            return
        bin_dir = find_pg_bin()
        if bin_dir is not None and (self.base / "data").exists():
            subprocess.run(self._cmd(str(bin_dir / "pg_ctl"), "-D", str(self.base / "data"), "-m", "fast",
                                     "-w", "stop"), capture_output=True, check=False)
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = None


def _wait_connect(admin_url: str, timeout_s: float = 20.0) -> None:
    engine = sa.create_engine(admin_url, poolclass=sa.pool.NullPool)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
                return
            except sa.exc.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise PostgresUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
                time.sleep(0.2)
    finally:
        engine.dispose()


def create_database(admin_url: str, name: str | None = None) -> str:
    """Create an empty database (UTF8) through `admin_url`; returns its URL.

    Raises: PostgresUnavailable when the server cannot be reached.
    """
    _wait_connect(admin_url)
    name = name or f"hie_test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0'))
    finally:
        engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    """Drop the database named by `url` (connections to it are terminated)."""
    name = make_url(url).database
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()
