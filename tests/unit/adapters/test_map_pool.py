"""Mapping in worker processes (adapters.map_pool): the same ACKs and the same stored resources
as mapping in the writer, on the whole sample feed (bad messages included) with terminology
translation; a dead worker falls back to mapping in the writer."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.hl7v2.ack import read_ack
from adapters.ingest import IngestService
from adapters.settings import IngestSettings
from ehr_store import SqlStore, Store, StoreSettings, json_loads, upgrade_schema
from hie_server.startup import ensure_terminology
from terminology import TerminologyService

CLOCK = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def _feed(sample_feed: Path, sample_truth: list[dict[str, Any]]) -> list[bytes]:
    return [(sample_feed / row["file"]).read_bytes() for row in sample_truth]


def _ingest(
    url: str, messages: list[bytes], settings: IngestSettings
) -> tuple[list[str], Store, IngestService]:
    upgrade_schema(url)
    store = SqlStore(StoreSettings(database_url=url))
    terminology = TerminologyService(store)
    ensure_terminology(store, terminology)
    service = IngestService(store, settings, clock=lambda: CLOCK, terminology=terminology)
    acks: list[str] = []
    for start in range(0, len(messages), 8):
        accs = service.accept_many(messages[start : start + 8], transport="test")
        later = iter(service.process_many([a for a in accs if not a.done]))
        for acc in accs:
            frames = list(acc.frames) + ([] if acc.done else next(later))
            ack = read_ack(frames[-1])
            acks.append(f"{ack.code} {sorted(ack.errors)}")
    return acks, store, service


def _outcomes(store: Store) -> list[tuple[str, str | None]]:
    with store.unit_of_work() as uow:
        rows = sorted(uow.messages.list(limit=1000), key=lambda m: m.id)
    return [(m.status, m.error) for m in rows]


def _contents(store: Store) -> dict[str, Any]:
    """Every current resource but golden Patients (server-assigned ids), without meta."""
    out: dict[str, Any] = {}
    with store.unit_of_work() as uow:
        for rtype in ("Patient", "Encounter", "Observation", "DiagnosticReport", "Condition", "Provenance",
                      "Immunization", "ServiceRequest", "AllergyIntolerance", "RelatedPerson", "Coverage"):
            offset = 0
            while True:
                page = uow.resources.search(rtype, [("_count", "500"), ("_offset", str(offset))])
                for match in page.matches:
                    doc = json_loads(match.content)
                    doc.pop("meta", None)
                    if rtype == "Provenance":
                        doc.pop("recorded")  # the archive's receipt time (real clock)
                    if rtype == "Patient" and "link" in doc:
                        doc["link"] = [x for x in doc["link"] if x.get("type") != "refer"]
                    tags = match.as_dict().get("meta", {}).get("tag", [])
                    if not any(t.get("code") == "golden" for t in tags):
                        out[f"{rtype}/{match.id}"] = doc
                if not page.has_more:
                    break
                offset += 500
    return out


def test_workers_give_the_same_acks_and_resources(
    sample_feed: Path, sample_truth: list[dict[str, Any]], ingest_settings: IngestSettings, tmp_path: Path
) -> None:
    messages = _feed(sample_feed, sample_truth)
    in_writer, store_a, service_a = _ingest(f"sqlite:///{tmp_path}/a.db", messages, ingest_settings)
    pooled = ingest_settings.model_copy(update={"map_processes": 1})
    in_workers, store_b, service_b = _ingest(f"sqlite:///{tmp_path}/b.db", messages, pooled)
    try:
        assert service_b._pool is not None and service_b._pool.active  # the workers mapped all along
        assert in_workers == in_writer
        codes = Counter(a.split()[0] for a in in_writer)
        assert codes["CA"] + codes["AA"] >= len(messages) - 10 and codes["AE"] + codes["AR"] >= 4
        assert _outcomes(store_b) == _outcomes(store_a)  # processing outcome of every message
        assert Counter(s for s, _e in _outcomes(store_a))["processed"] >= len(messages) - 10
        a, b = _contents(store_a), _contents(store_b)
        assert a.keys() == b.keys() and a == b
    finally:
        for service, store in ((service_a, store_a), (service_b, store_b)):
            service.close()
            store.close()


def test_a_dead_worker_leaves_mapping_to_the_writer(
    sample_feed: Path, sample_truth: list[dict[str, Any]], ingest_settings: IngestSettings, tmp_path: Path
) -> None:
    messages = _feed(sample_feed, sample_truth)[:24]
    url = f"sqlite:///{tmp_path}/c.db"
    upgrade_schema(url)
    store = SqlStore(StoreSettings(database_url=url))
    service = IngestService(store, ingest_settings.model_copy(update={"map_processes": 1}))
    try:
        service.process_many(service.accept_many(messages[:8], transport="test"))
        children = multiprocessing.active_children()
        assert children, "the mapping worker should be running"
        for child in children:
            assert child.pid is not None
            os.kill(child.pid, signal.SIGKILL)
            child.join(10)
        accs = service.accept_many(messages[8:24], transport="test")
        service.process_many([a for a in accs if not a.done])
        assert Counter(status for status, _e in _outcomes(store)) == {"processed": 24}
        assert service._pool is not None and not service._pool.active  # the writer maps from now on
    finally:
        service.close()
        store.close()


@pytest.mark.parametrize("processes", [0, 2])
def test_memory_store_maps_in_the_writer(processes: int) -> None:
    from ehr_store import MemoryStore

    service = IngestService(MemoryStore(StoreSettings(database_url="memory://")),
                            IngestSettings(map_processes=processes))
    assert service._pool is None
