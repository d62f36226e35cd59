"""The shared sample feed (`../shared/samples/feed-small`) ingested in-process through the
same composition as `hie serve` (IngestService with the EMPI hook and the terminology
service, shipped terminology loaded at startup), and a FHIR client over the same store.

The tests then look at the result through the FHIR API only (`fastapi.testclient`).

May import: the project's public APIs, httpx/starlette test client, the standard library.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from adapters import IngestService, IngestSettings
from ehr_store import Store, StoreSettings, open_store
from ehr_store.empi import EmpiService
from hie_server.app import create_app
from hie_server.operations.empi import empi_module
from hie_server.operations.terminology import terminology_module
from hie_server.settings import HieSettings
from hie_server.startup import ensure_terminology
from terminology import TerminologyService

Json = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
SAMPLES = Path(os.environ.get("HIE_SAMPLES_DIR", REPO / ".." / "shared" / "samples"))
FEED = SAMPLES / "feed-small"
FHIR_JSON = {"Accept": "application/fhir+json"}


@dataclass
class World:
    """An ingested feed: the store, the services, a FHIR client, and each file's outcome."""

    store: Store
    terminology: TerminologyService
    empi: EmpiService
    ingest: IngestService
    client: TestClient
    outcomes: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        self.client.close()
        self.store.close()


def truth() -> list[Json]:
    """`truth.jsonl` rows in feed order (the file numbers are one sequence across facilities)."""
    if not (FEED / "truth.jsonl").exists():
        raise FileNotFoundError(f"shared sample feed not found at {FEED} (set HIE_SAMPLES_DIR)")
    rows = [json.loads(line) for line in (FEED / "truth.jsonl").read_text(encoding="utf-8").splitlines()]
    return sorted(rows, key=lambda r: Path(r["file"]).name)


def build_world(database_url: str) -> World:
    """Open the store, load the shipped terminology (as `hie serve` does), ingest every file
    of the feed in order, and return the world with a FHIR client over the same store."""
    store = open_store(StoreSettings(database_url=database_url))
    terminology = TerminologyService(store)
    ensure_terminology(store, terminology)
    empi = EmpiService()
    ingest = IngestService(
        store,
        IngestSettings(default_assume_offset="+08:00"),
        identity_hooks=empi,
        terminology=terminology,
    )
    settings = HieSettings(store=StoreSettings(database_url=database_url))
    app = create_app(settings, store, modules=[terminology_module(terminology), empi_module(empi)])
    world = World(store, terminology, empi, ingest, TestClient(app))
    for row in truth():
        result = ingest.ingest((FEED / row["file"]).read_bytes(), transport="test")
        world.outcomes[row["file"]] = result.outcome
    return world


def get(client: TestClient, path: str, **params: str) -> Json:
    """GET a FHIR path; asserts 200 and returns the JSON body."""
    reply = client.get(f"/fhir/{path}", params=params, headers=FHIR_JSON)
    assert reply.status_code == 200, f"GET {path} {params}: {reply.status_code} {reply.text[:500]}"
    body: Json = reply.json()
    return body


def all_pages(client: TestClient, path: str, **params: str) -> Iterator[Json]:
    """Every entry resource of a searchset, following `next` links to the end."""
    body = get(client, path, **params)
    while True:
        for entry in body.get("entry", []):
            yield entry["resource"]
        nxt = next((link["url"] for link in body.get("link", []) if link["relation"] == "next"), None)
        if nxt is None:
            return
        reply = client.get(nxt, headers=FHIR_JSON)
        assert reply.status_code == 200, f"GET {nxt}: {reply.status_code} {reply.text[:500]}"
        body = reply.json()


def segments(path: Path) -> list[list[str]]:
    """The message's segments split into fields (UTF-8, else GB18030)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("gb18030", errors="replace")
    text = text.replace("\r\n", "\r").replace("\n", "\r")
    return [seg.split("|") for seg in text.split("\r") if seg]


def field_value(segs: list[list[str]], name: str, n: int, component: int = 1) -> str:
    """First `name` segment's field n (1-based), first repetition, component; "" when absent."""
    for seg in segs:
        if seg[0] == name and len(seg) > n:
            comps = seg[n].split("~")[0].split("^")
            return comps[component - 1] if len(comps) >= component else ""
    return ""
