"""`hie synth` on the command line: writes the feed, reports it, refuses a non-empty OUTDIR."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from hie_server.cli import app


def test_hie_synth_writes_a_feed_and_summarises_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["synth", str(tmp_path / "feed"), "--residents", "12", "--seed", "4"])
    assert result.exit_code == 0, result.output
    truth = (tmp_path / "feed" / "truth.jsonl").read_text(encoding="utf-8").splitlines()
    good = [json.loads(line) for line in truth if '"facility": "BAD"' not in line]
    assert f"wrote {len(good)} messages" in " ".join(result.output.split())
    assert len((tmp_path / "feed" / "residents.jsonl").read_text(encoding="utf-8").splitlines()) == 12


def test_hie_synth_without_bad_examples(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["synth", str(tmp_path / "feed"), "--residents", "5", "--no-bad"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "feed" / "feeds" / "BAD").exists()


def test_hie_synth_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep")
    result = CliRunner().invoke(app, ["synth", str(tmp_path)])
    assert result.exit_code == 2
    assert "not empty" in result.output
    assert (tmp_path / "notes.txt").read_text() == "keep"
