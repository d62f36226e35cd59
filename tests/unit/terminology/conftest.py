"""Fixtures for the terminology tests: the shipped content indexed once per session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from terminology import TerminologyIndex, shipped_resources

Json = dict[str, Any]


@pytest.fixture(scope="session")
def resources() -> list[Json]:
    """Every shipped terminology resource."""
    return shipped_resources()


@pytest.fixture(scope="session")
def index(resources: list[Json]) -> TerminologyIndex:
    """The index over the shipped content."""
    return TerminologyIndex.from_resources(resources)


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """`../shared/samples` next to the repository (or `HIE_SAMPLES_DIR`)."""
    default = Path(__file__).resolve().parents[3] / ".." / "shared" / "samples"
    return Path(os.environ.get("HIE_SAMPLES_DIR", default))
