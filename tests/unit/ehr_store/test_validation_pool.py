"""ValidationPool and `accept_validated`: a document validated in a worker is not validated a
second time by the write, but only that exact document; invalid ones still fail the write."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import ehr_store.versioning as versioning
from ehr_store import InvalidInput, MemoryStore, StoreSettings, ValidationPool, content_digest

PATIENT = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Li", "given": ["Wei"]}]}
BAD = {"resourceType": "Observation", "id": "o1", "status": "no-such-status"}


@pytest.fixture(scope="module")
def pool() -> Iterator[ValidationPool]:
    p = ValidationPool(1)
    try:
        yield p
    finally:
        p.close()


def test_content_digest_is_key_order_free_and_content_exact() -> None:
    reordered = {"name": PATIENT["name"], "id": "p1", "resourceType": "Patient"}
    assert content_digest(reordered) == content_digest(PATIENT)
    assert content_digest({**PATIENT, "gender": "male"}) != content_digest(PATIENT)


def test_pool_answers_a_digest_for_valid_documents_only(pool: ValidationPool) -> None:
    assert pool.submit([PATIENT, BAD]).result(timeout=60) == [content_digest(PATIENT), None]


def test_accepted_digest_skips_only_that_document(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    real = versioning.validate_resource

    def counting(resource: Any, **kw: Any) -> str:
        calls.append(resource.get("id"))
        return real(resource, **kw)

    monkeypatch.setattr(versioning, "validate_resource", counting)
    store = MemoryStore(StoreSettings(database_url="memory://"))
    with store.unit_of_work(write=True) as uow:
        uow.resources.accept_validated([content_digest(PATIENT), None])
        uow.resources.update("Patient", "p1", PATIENT)
        assert calls == []
        other = {**PATIENT, "id": "p2"}
        uow.resources.update("Patient", "p2", other)
        assert calls == ["p2"]
        with pytest.raises(InvalidInput):
            uow.resources.update("Observation", "o1", BAD)
        uow.commit()
    with store.unit_of_work(write=True) as uow:  # a new unit of work starts with nothing accepted
        uow.resources.update("Patient", "p1", {**PATIENT, "gender": "female"})
    assert calls[-1] == "p1"
