"""Fixtures for the HTTP-layer tests: the app over each `store` backend (tests/conftest.py:
memory, SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ehr_store import Store
from hie_server.app import FhirModule, create_app
from hie_server.settings import HieSettings, HttpSettings


def make_settings(**http: object) -> HieSettings:
    defaults: dict[str, object] = {"max_body_bytes": 64 * 1024, "max_bundle_entries": 20, "max_page_size": 50}
    return HieSettings(http=HttpSettings(**{**defaults, **http}))  # type: ignore[arg-type]


@pytest.fixture
def settings() -> HieSettings:
    return make_settings()


@pytest.fixture
def modules() -> list[FhirModule]:
    return []


@pytest.fixture
def client(settings: HieSettings, store: Store, modules: list[FhirModule]) -> Iterator[TestClient]:
    app = create_app(settings, store, modules=modules)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _patient(family: str = "Zhang", mrn: str = "MRN-1", **extra: object) -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.156.112604.1.1", "value": mrn}],
        "name": [{"family": family, "given": ["Wei"]}],
        "gender": "female",
        "birthDate": "1980-05-01",
        **extra,
    }


@pytest.fixture
def patient() -> object:
    """Factory of synthetic Patients: patient(family=..., mrn=..., **more elements)."""
    return _patient
