"""A real Keycloak server for the integration tests (fixture helper, no pytest import).

The Keycloak server distribution (Maven artifact `org.keycloak:keycloak-quarkus-dist`, fetched
into the local Maven repository by `.ci/run` with `mvn dependency:get`) is unzipped into a
cache directory and started on loopback in dev mode with the versioned realm
`docker/keycloak/qingyuan-realm.json` imported (`kc.sh start-dev --import-realm`).

`HIE_TEST_KEYCLOAK_URL` (e.g. `http://127.0.0.1:8180`) reuses a running server that already
has the realm; nothing is started or stopped then.

Environment: `HIE_KEYCLOAK_VERSION` (default 26.5.6), `HIE_KEYCLOAK_ZIP` (path of the zip),
`HIE_KEYCLOAK_CACHE` (default `~/.cache/hie-keycloak`), `JAVA_HOME` (else a JDK 21+ found
under /usr/lib/jvm, else the `java` on PATH).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
REALM_FILE = REPO / "docker" / "keycloak" / "qingyuan-realm.json"
REALM = "qingyuan"
VERSION = os.environ.get("HIE_KEYCLOAK_VERSION", "26.5.6")
ADMIN_USER = "hie-test-admin"
ADMIN_PASSWORD = "hie-test-admin-password"
DEMO_PASSWORD = "demo-only-password"


class KeycloakUnavailable(RuntimeError):
    """The Keycloak distribution or a suitable Java runtime is missing, or it did not start."""


@dataclass
class KeycloakServer:
    """A running Keycloak: base URL, realm, admin credentials; `stop()` ends it when we started it."""

    url: str
    realm: str = REALM
    admin_user: str = ADMIN_USER
    admin_password: str = ADMIN_PASSWORD
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    home: Path | None = field(default=None, repr=False)

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/{self.realm}"

    def stop(self) -> None:
        """Terminate the server we started (SIGTERM to its process group, SIGKILL after 30 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        group = self.process.pid  # started in its own session: kc.sh and its java child
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
            self.process.wait(timeout=10)
        if self.home is not None and self.home.parent.name.startswith("hie-keycloak-"):
            shutil.rmtree(self.home.parent, ignore_errors=True)


def distribution_zip() -> Path:
    """Path of the Keycloak server zip in the local Maven repository (or `HIE_KEYCLOAK_ZIP`)."""
    given = os.environ.get("HIE_KEYCLOAK_ZIP")
    if given:
        return Path(given)
    m2 = Path(os.environ.get("MAVEN_REPO", Path.home() / ".m2" / "repository"))
    return m2 / "org/keycloak/keycloak-quarkus-dist" / VERSION / f"keycloak-quarkus-dist-{VERSION}.zip"


def java_home() -> str | None:
    """A JDK Keycloak 26.5 supports (21+): `JAVA_HOME`, else the newest under /usr/lib/jvm."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    jvm = Path("/usr/lib/jvm")
    candidates = sorted(p for p in jvm.glob("*") if (p / "bin" / "java").exists()) if jvm.is_dir() else []
    for major in ("25", "21"):
        for path in candidates:
            if f"-{major}" in path.name and not path.is_symlink():
                return str(path)
    return None


def unpack(cache: Path) -> Path:
    """Unzip the distribution into `cache` once; return the Keycloak home directory.

    Raises: KeycloakUnavailable (no zip).
    """
    home = cache / f"keycloak-{VERSION}"
    if (home / "bin" / "kc.sh").exists():
        return home
    zip_path = distribution_zip()
    if not zip_path.exists():
        raise KeycloakUnavailable(
            f"{zip_path} is missing; fetch it with `mvn -q dependency:get "
            f"-Dartifact=org.keycloak:keycloak-quarkus-dist:{VERSION}:zip`"
        )
    cache.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(cache)
    for script in (home / "bin").glob("*.sh"):
        script.chmod(0o755)
    return home


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, realm: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll the realm's discovery document until it answers 200. Raises: KeycloakUnavailable."""
    deadline = time.monotonic() + timeout
    well_known = f"{url}/realms/{realm}/.well-known/openid-configuration"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise KeycloakUnavailable(f"Keycloak exited with status {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(well_known, timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise KeycloakUnavailable(f"Keycloak at {url} not ready after {timeout:.0f} s")


def start(cache: Path | None = None, timeout: float = 240.0) -> KeycloakServer:
    """Start Keycloak in dev mode with the realm imported, or reuse `HIE_TEST_KEYCLOAK_URL`.

    Raises: KeycloakUnavailable.
    """
    given = os.environ.get("HIE_TEST_KEYCLOAK_URL")
    if given:
        server = KeycloakServer(given.rstrip("/"))
        server.admin_user = os.environ.get("HIE_TEST_KEYCLOAK_ADMIN", "admin")
        server.admin_password = os.environ.get("HIE_TEST_KEYCLOAK_ADMIN_PASSWORD", "admin")
        wait_ready(server.url, REALM, 10)
        return server
    jdk = java_home()
    if jdk is None and shutil.which("java") is None:
        raise KeycloakUnavailable("no Java runtime found (JAVA_HOME, /usr/lib/jvm, PATH)")
    pristine = unpack(
        cache or Path(os.environ.get("HIE_KEYCLOAK_CACHE", Path.home() / ".cache" / "hie-keycloak"))
    )
    # a private copy per session: concurrent test sessions never share Keycloak's dev database
    home = Path(tempfile.mkdtemp(prefix="hie-keycloak-")) / pristine.name
    shutil.copytree(pristine, home, symlinks=True, ignore=shutil.ignore_patterns("data", "*.log"))
    data = home / "data"
    (data / "import").mkdir(parents=True)
    shutil.copy(REALM_FILE, data / "import" / REALM_FILE.name)
    port = free_port()
    env = {
        **os.environ,
        "KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USER,
        "KC_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "JAVA_OPTS_KC_HEAP": "-XX:MaxRAMPercentage=25 -XX:InitialRAMPercentage=5",
    }
    if jdk:
        env["JAVA_HOME"] = jdk
    log_path = home / "hie-test-keycloak.log"
    command = [
        str(home / "bin" / "kc.sh"),
        "start-dev",
        "--http-host=127.0.0.1",
        f"--http-port={port}",
        "--import-realm",
        "--health-enabled=false",
        "--http-management-port",
        str(free_port()),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = KeycloakServer(f"http://127.0.0.1:{port}", process=process, log_path=log_path, home=home)
    try:
        wait_ready(server.url, REALM, timeout, process)
    except KeycloakUnavailable as exc:
        tail = log_path.read_text(errors="replace")[-2000:]
        server.stop()
        raise KeycloakUnavailable(f"{exc}\n--- keycloak log tail ---\n{tail}") from None
    return server
