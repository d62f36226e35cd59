"""Fixtures for the adapters tests: the sample feed and ingest settings for it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from adapters.settings import IngestSettings

REPO = Path(__file__).resolve().parents[3]


def samples_dir() -> Path:
    """`HIE_SAMPLES_DIR` or `<repo>/../shared/samples`."""
    return Path(os.environ.get("HIE_SAMPLES_DIR", REPO / ".." / "shared" / "samples")).resolve()


def feed_small() -> Path:
    return samples_dir() / "feed-small"


def truth() -> list[dict[str, Any]]:
    path = feed_small() / "truth.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def sample_feed() -> Path:
    """The feed-small directory (skips when the shared samples are absent)."""
    path = feed_small()
    if not (path / "truth.jsonl").exists():
        pytest.skip(f"sample feed not found under {path}")
    return path


@pytest.fixture
def sample_truth() -> list[dict[str, Any]]:
    rows = truth()
    if not rows:
        pytest.skip(f"sample feed not found under {feed_small()}")
    return rows


@pytest.fixture
def ingest_settings() -> IngestSettings:
    """Two sample facilities send local times without an offset: they are configured +08:00."""
    return IngestSettings(default_assume_offset="+08:00")
