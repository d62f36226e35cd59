"""The `local_issuer` fixture: a local OpenID issuer served over real HTTP (tests/local_issuer.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from local_issuer import LocalIssuer, served_issuer

__all__ = ["LocalIssuer", "local_issuer"]


@pytest.fixture
def local_issuer() -> Iterator[LocalIssuer]:
    with served_issuer() as issuer:
        yield issuer
