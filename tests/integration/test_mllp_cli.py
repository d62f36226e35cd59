"""`hie send`, `hie errors list|show` and `hie replay` against a real MLLP listener on
loopback and a SQLite database: the whole sample feed goes through the CLI."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.ingest import IngestService
from adapters.mllp.server import MllpServer
from adapters.settings import IngestSettings, MllpSettings
from ehr_store import SqlStore, StoreSettings
from hie_server.cli import app

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "samples" / "feed-small"


@pytest.fixture
def listener(sqlite_url: str) -> Iterator[tuple[int, str]]:
    store = SqlStore(StoreSettings(database_url=sqlite_url))
    server = MllpServer(
        IngestService(store, IngestSettings(default_assume_offset="+08:00")), MllpSettings(port=0)
    )
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30)
    try:
        yield server.port, sqlite_url
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        store.close()


def test_send_errors_and_replay(listener: tuple[int, str]) -> None:
    if not (SAMPLES / "truth.jsonl").exists():
        pytest.skip(f"sample feed not found under {SAMPLES}")
    port, url = listener
    runner = CliRunner()
    good = runner.invoke(app, ["send", "--port", str(port), str(SAMPLES / "feeds" / "QYRMYY")])
    assert good.exit_code == 0, good.output
    assert "CA 132" in good.output
    result = runner.invoke(app, ["send", "--port", str(port), str(SAMPLES / "feeds")])
    assert result.exit_code == 1
    assert "sent 237 message(s)" in result.output and "AE 4" in result.output and "AR 2" in result.output
    listing = runner.invoke(app, ["errors", "list", "--database-url", url])
    assert listing.exit_code == 0 and "BAD0003" in listing.output
    shown = runner.invoke(app, ["errors", "show", "1", "--database-url", url])
    assert shown.exit_code == 0 and "--- message ---" in shown.output
    replayed = runner.invoke(app, ["replay", "--all", "--database-url", url])
    assert replayed.exit_code == 1 and "replayed 7 message(s)" in replayed.output
    assert "failed: " in replayed.output  # which messages still fail, and why
    processed = runner.invoke(app, ["replay", "1", "--database-url", url])  # an accepted message
    assert processed.exit_code == 1 and "not in the error queue" in processed.output
    forced = runner.invoke(app, ["replay", "1", "--force", "--database-url", url])
    assert forced.exit_code == 0 and "replayed 1 message(s): AA 1" in forced.output
    missing = runner.invoke(app, ["replay", "99999", "--database-url", url])
    assert missing.exit_code == 1


def test_send_batch_file(listener: tuple[int, str], tmp_path: Path) -> None:
    if not (SAMPLES / "truth.jsonl").exists():
        pytest.skip(f"sample feed not found under {SAMPLES}")
    port, _url = listener
    msgs = [(SAMPLES / "feeds" / "QYRMYY" / n).read_bytes() for n in ("00001.hl7", "00004.hl7", "00005.hl7")]
    batch = b"FHS|^~\\&|HIS|QYRMYY\rBHS|^~\\&|HIS|QYRMYY\r" + b"".join(msgs) + b"BTS|3\rFTS|1\r"
    (tmp_path / "day.batch").write_bytes(batch)
    result = CliRunner().invoke(app, ["send", "--port", str(port), str(tmp_path / "day.batch")])
    assert result.exit_code == 0 and "sent 3 message(s) from 1 file(s): CA 3" in result.output


def test_send_cannot_connect_exits_2(tmp_path: Path) -> None:
    (tmp_path / "m.hl7").write_bytes(b"MSH|^~\\&|A|B|C|D|20260101||ADT^A04|1|P|2.5\r")
    result = CliRunner().invoke(app, ["send", "--port", "1", str(tmp_path)])
    assert result.exit_code == 2
