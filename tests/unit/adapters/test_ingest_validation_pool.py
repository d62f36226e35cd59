"""IngestService with a ValidationPool (worker-process validation): the sample feed gives the
same acknowledgements and resources as inline validation, and an invalid mapped resource
still fails its message alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.hl7v2.ack import read_ack
from adapters.ingest import IngestService
from adapters.settings import IngestSettings
from ehr_store import SqlStore, Store, StoreSettings, ValidationPool, upgrade_schema


@pytest.fixture(scope="module")
def pool() -> Iterator[ValidationPool]:
    p = ValidationPool(1)
    try:
        yield p
    finally:
        p.close()


def _ingest_feed(store: Store, svc: IngestService, feed: Path, truth: list[dict[str, Any]]) -> list[str]:
    raws = [(feed / row["file"]).read_bytes() for row in truth]
    codes: list[str] = []
    for start in range(0, len(raws), 8):
        accs = svc.accept_many(raws[start : start + 8], transport="test")
        results = iter(svc.process_many([a for a in accs if not a.done]))
        for acc in accs:
            frames = list(acc.frames) if acc.done else list(acc.frames) + next(results)
            codes.append(read_ack(frames[-1]).code)
    return codes


def _counts(store: Store) -> dict[str, int]:
    with store.unit_of_work() as uow:
        return {
            t: len(uow.resources.search(t, [("_count", "1000")]).matches)
            for t in ("Patient", "Observation", "Encounter", "DiagnosticReport")
        }


def test_sample_feed_with_pool_equals_inline(
    tmp_path: Path,
    pool: ValidationPool,
    ingest_settings: IngestSettings,
    sample_feed: Path,
    sample_truth: list[dict[str, Any]],
) -> None:
    outcomes = []
    for name, p in (("inline", None), ("pool", pool)):
        url = f"sqlite:///{tmp_path / name}.db"
        upgrade_schema(url)
        store = SqlStore(StoreSettings(database_url=url))
        try:
            svc = IngestService(store, ingest_settings, validation_pool=p)
            outcomes.append((_ingest_feed(store, svc, sample_feed, sample_truth), _counts(store)))
        finally:
            store.close()
    assert outcomes[0] == outcomes[1]
    codes = outcomes[1][0]
    for row, code in zip(sample_truth, codes, strict=True):
        rejected = row.get("expect", "").startswith("reject")
        assert (code in {"AE", "AR", "CE", "CR"}) == rejected, (row["file"], code)
