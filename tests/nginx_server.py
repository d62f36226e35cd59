"""A real nginx in front of the exchange and Orthanc for the DICOMweb tests (fixture helper, no
pytest import).

Starts Debian's `/usr/sbin/nginx` (package `nginx-light` or `nginx`, installed by
`.ci/nginx.sh`) as the current user with `-p <tmpdir> -c <tmpdir>/nginx.conf`, `daemon off`,
error log, pid and temp files in the temp dir, listening on a free loopback port. Its http
block includes the production DICOMweb cache (`docker/proxy/templates/dicomweb-cache.conf.template`,
cache directory `<tmpdir>/dicomweb-cache`) and its one server block the production DICOMweb
locations (`dicomweb.locations.template`), both rendered with the gate secret, the Orthanc
account and the cache bounds as the nginx image would; everything else goes to the exchange,
like `hie.conf.template` without TLS. The access log (`access_log_lines()`) records each
request's status and `$upstream_cache_status` (HIT, MISS, BYPASS or -). `stop_nginx()` stops it
(SIGQUIT, then SIGKILL) and removes the temp dir.

`HIE_NGINX_BINARY` overrides the binary.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BINARY = os.environ.get("HIE_NGINX_BINARY", "/usr/sbin/nginx")
TEMPLATES = Path(__file__).resolve().parents[1] / "docker/proxy/templates"
TEMPLATE = TEMPLATES / "dicomweb.locations.template"
CACHE_TEMPLATE = TEMPLATES / "dicomweb-cache.conf.template"


class NginxUnavailable(RuntimeError):
    """nginx is not installed, lacks auth_request, or did not start."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def render(template: str, values: dict[str, str]) -> str:
    """`${NAME}` replaced from `values` (only those names, as the nginx image's envsubst does;
    nginx's own `$variables` stay). Raises: KeyError (a name without a value)."""
    return re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], template)


def basic_authorization(username: str, password: str) -> str:
    """The `Authorization` value of HTTP Basic (RFC 7617) for nginx to send to Orthanc."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@dataclass
class NginxServer:
    """A running nginx we started: `url`, `home` (config, logs), `process`."""

    home: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def error_log(self) -> Path:
        return self.home / "error.log"

    @property
    def cache_dir(self) -> Path:
        """The DICOMweb cache (DICOMWEB_CACHE_PATH)."""
        return self.home / "dicomweb-cache"

    def access_log_lines(self) -> list[str]:
        """`<request line> <status> <upstream_cache_status>` per request so far (nginx writes
        a line when the answer is complete)."""
        with contextlib.suppress(OSError):
            return (self.home / "access.log").read_text(errors="replace").splitlines()
        return []

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.error_log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def config(home: Path, port: int, exchange_port: int, orthanc_port: int) -> str:
    """nginx.conf of the test server (module docstring)."""
    user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""  # workers stay this user
    temp = "\n".join(
        f"    {kind}_temp_path {home / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}daemon off;
worker_processes 1;
pid {home / "nginx.pid"};
error_log {home / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
    log_format cache '"$request" $status $upstream_cache_status';
    access_log {home / "access.log"} cache;
{temp}
    include {home / "dicomweb-cache.conf"};
    upstream dicomweb_exchange {{ server 127.0.0.1:{exchange_port}; keepalive 8; }}
    upstream dicomweb_orthanc {{ server 127.0.0.1:{orthanc_port}; keepalive 8; }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 512m;
        location / {{
            proxy_pass http://dicomweb_exchange;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffering off;
            proxy_request_buffering off;
        }}
        include {home / "dicomweb.locations"};
    }}
}}
"""


def start_nginx(
    exchange_port: int,
    orthanc_port: int,
    gate_secret: str,
    orthanc_auth: tuple[str, str],
    timeout: float = 10.0,
    cache_max_size: str = "1g",
    cache_inactive: str = "60m",
    cache_valid: str = "10m",
) -> NginxServer:
    """Start nginx (module docstring) in front of the exchange on `exchange_port` and Orthanc on
    `orthanc_port`; the cache bounds are nginx sizes/times (DICOMWEB_CACHE_MAX_SIZE, _INACTIVE,
    _VALID). Raises: NginxUnavailable."""
    if not Path(BINARY).exists():
        raise NginxUnavailable(f"{BINARY} not found: install Debian's nginx-light package (.ci/nginx.sh)")
    home = Path(tempfile.mkdtemp(prefix="hie-nginx-"))
    server = NginxServer(home, _free_port())
    values = {
        "HIE_IMAGING__GATE_SECRET": gate_secret,
        "ORTHANC_PROXY_AUTHORIZATION": basic_authorization(*orthanc_auth),
        "DICOMWEB_CACHE_PATH": str(server.cache_dir),
        "DICOMWEB_CACHE_MAX_SIZE": cache_max_size,
        "DICOMWEB_CACHE_INACTIVE": cache_inactive,
        "DICOMWEB_CACHE_VALID": cache_valid,
    }
    (home / "dicomweb.locations").write_text(render(TEMPLATE.read_text(encoding="utf-8"), values))
    (home / "dicomweb-cache.conf").write_text(render(CACHE_TEMPLATE.read_text(encoding="utf-8"), values))
    conf = home / "nginx.conf"
    conf.write_text(config(home, server.port, exchange_port, orthanc_port))
    command = [BINARY, "-p", str(home), "-c", str(conf), "-e", str(server.error_log)]
    checked = subprocess.run([*command, "-t", "-q"], capture_output=True, text=True)
    if checked.returncode != 0:
        shutil.rmtree(home, ignore_errors=True)
        raise NginxUnavailable(f"nginx rejected the configuration: {checked.stderr.strip()}")
    server.process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log_tail()
            stop_nginx(server)
            raise NginxUnavailable(f"nginx exited with {server.process.returncode}: {tail}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=0.2):
            return server
        time.sleep(0.05)
    tail = server.log_tail()
    stop_nginx(server)
    raise NginxUnavailable(f"nginx did not listen within {timeout} s: {tail}")


def stop_nginx(server: NginxServer) -> None:
    """Graceful stop (SIGQUIT), SIGKILL after 10 s; the temp dir removed."""
    process = server.process
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    shutil.rmtree(server.home, ignore_errors=True)
