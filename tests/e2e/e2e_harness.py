"""Drive the exchange from outside, as the README's main job does: `hie` subprocesses on
free loopback ports with a temporary SQLite database, MLLP through `hie send`, and checks
through the FHIR API. Also reads a feed's files to say what the exchange should hold.

May import: httpx, `ehr_store.resident_id`, the standard library.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ehr_store.resident_id import RESIDENT_ID_SYSTEM, parse_resident_id

_HIE_SCRIPT = Path(sys.executable).with_name("hie")
HIE = [str(_HIE_SCRIPT)] if _HIE_SCRIPT.exists() else [sys.executable, "-c",
                                                         "from hie_server.cli import main; main()"]


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports free on 127.0.0.1 right now (all bound at once, then released)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def hie(*args: str, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run `hie ARGS` to completion; stdout and stderr captured as text."""
    return subprocess.run([*HIE, *args], capture_output=True, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


@dataclass
class Server:
    """A running `hie serve` child process and where to reach it."""

    process: subprocess.Popen[bytes]
    base: str
    mllp_port: int
    log: Path
    database_url: str

    def log_tail(self) -> str:
        """The last 3000 characters the server wrote (for assertion messages)."""
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(workdir: Path, env: dict[str, str], database_url: str | None = None,
                 extra_args: tuple[str, ...] = ()) -> Server:
    """`hie db upgrade` then `hie serve [extra_args]` on free ports, on `database_url`
    (default: a SQLite file under `workdir`).

    Raises: AssertionError (with the server log) when it is not ready within 90 s.
    """
    url = database_url or f"sqlite:///{workdir / 'hie.db'}"
    upgraded = hie("db", "upgrade", "--database-url", url, env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    port, mllp_port = free_ports(2)
    log = workdir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*HIE, "serve", "--host", "127.0.0.1", "--port", str(port), "--mllp-port", str(mllp_port),
             "--database-url", url, *extra_args],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ, **env})
    server = Server(process, f"http://127.0.0.1:{port}/fhir", mllp_port, log, url)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, f"hie serve exited {process.returncode}:\n{server.log_tail()}"
        try:
            if httpx.get(f"{server.base}/metadata", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    server.stop()
    raise AssertionError(f"hie serve not ready in 90 s:\n{server.log_tail()}")


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("gb18030")


def _segments(data: bytes) -> list[list[str]]:
    text = _decode(data).replace("\r\n", "\r").replace("\n", "\r")
    return [s.split("|") for s in text.split("\r") if s]


def _field(segs: list[list[str]], name: str, n: int) -> str:
    found = [s[n] for s in segs if s[0] == name and len(s) > n]
    return found[0] if found else ""


@dataclass
class Expected:
    """What the exchange should hold after a feed's accepted messages (read from the files)."""

    accepted_files: list[Path] = field(default_factory=list)
    rejected_files: list[Path] = field(default_factory=list)
    mrns: set[str] = field(default_factory=set)
    merged_mrns: set[str] = field(default_factory=set)
    resident_ids: set[str] = field(default_factory=set)
    observations: int = 0
    accessions: set[str] = field(default_factory=set)
    types: Counter[str] = field(default_factory=Counter)
    updated_mrns: set[str] = field(default_factory=set)
    last_phone: dict[str, str] = field(default_factory=dict)
    """PID-13 of the last message about each MRN, in sending order (a later registration
    that repeats an old number wins over an earlier A08)."""


def expected_from_feed(feed: Path) -> Expected:
    """Read `truth.jsonl` for what is accepted, and each accepted message for its content
    (in sending order: facility folder, then file name)."""
    exp = Expected()
    rows = [json.loads(line) for line in (feed / "truth.jsonl").read_text(encoding="utf-8").splitlines()]
    for row in sorted(rows, key=lambda r: str(r["file"])):
        path = feed / row["file"]
        if not str(row.get("expect", "accept")).startswith("accept"):
            exp.rejected_files.append(path)
            continue
        exp.accepted_files.append(path)
        segs = _segments(path.read_bytes())
        mtype = "^".join(_field(segs, "MSH", 8).split("^")[:2])
        exp.types[mtype] += 1
        for rep in _field(segs, "PID", 3).split("~"):
            parts = rep.split("^")
            if len(parts) > 4 and parts[4] == "MR":
                exp.mrns.add(parts[0])
            elif len(parts) > 4 and parts[4] in ("NNCHN", "ID") and parse_resident_id(parts[0]).valid:
                exp.resident_ids.add(parse_resident_id(parts[0]).value)
        pid19 = _field(segs, "PID", 19)
        if pid19 and parse_resident_id(pid19).valid:
            exp.resident_ids.add(parse_resident_id(pid19).value)
        if mtype == "ORU^R01":
            exp.observations += sum(1 for s in segs if s[0] == "OBX")
        if mtype == "ORM^O01":
            exp.accessions.add(_field(segs, "ORC", 2))
        if mtype == "ADT^A40":
            exp.merged_mrns.add(_field(segs, "MRG", 1).split("^")[0])
        mrn, phone = _field(segs, "PID", 3).split("^")[0], _field(segs, "PID", 13).split("^")[-1]
        if mrn and phone:
            exp.last_phone[mrn] = phone
        if mtype == "ADT^A08":
            exp.updated_mrns.add(mrn)
    return exp


def feed_folders(feed: Path) -> list[str]:
    """The feed's facility folders, sorted (each folder's files go in file-name order)."""
    return [str(p) for p in sorted((feed / "feeds").iterdir()) if p.is_dir()]


def search(client: httpx.Client, path: str, **params: str) -> dict[str, Any]:
    """GET a search and return the Bundle (asserting 200)."""
    reply = client.get(path, params=params)
    assert reply.status_code == 200, f"{path} {params}: {reply.status_code} {reply.text[:500]}"
    bundle: dict[str, Any] = reply.json()
    return bundle


def total(client: httpx.Client, rtype: str) -> int:
    """`Bundle.total` of `GET /{rtype}?_summary=count`."""
    value = search(client, f"/{rtype}", _summary="count")["total"]
    assert isinstance(value, int)
    return value


def source_patients(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The Patients of a search Bundle that are facility records, not EMPI resident records
    (golden Patients carry every identifier of their sources, so they match too)."""
    out = []
    for entry in bundle.get("entry", []):
        resource: dict[str, Any] = entry["resource"]
        if not any(t.get("code") == "golden" for t in resource.get("meta", {}).get("tag", [])):
            out.append(resource)
    return out


def resident_id_query(value: str) -> str:
    """The token `system|value` for a 身份证号."""
    return f"{RESIDENT_ID_SYSTEM}|{value}"
