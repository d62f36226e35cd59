"""Streaming writer of a synthetic feed: `feeds/<FACILITY>/NNNNN.hl7`, `truth.jsonl`,
`residents.jsonl`, `facilities.json` (the layout of `../shared/samples/feed-small/`).

Residents are planned in chunks; each chunk's messages are sorted by time and numbered, so
memory stays bounded however many residents are asked for. File numbers are global and
zero-padded to one width, so sorting paths within a facility folder gives sending order.

May import: other `adapters.synth` modules, `ehr_store` (public API), the standard library.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any

from adapters.synth.bad import bad_messages
from adapters.synth.er7 import encode
from adapters.synth.facilities import FACILITIES, describe
from adapters.synth.residents import make_resident
from adapters.synth.scenario import START, Counters, Event, plan_resident
from ehr_store import InvalidInput

MAX_MESSAGES_PER_RESIDENT = 40
"""Upper bound used to size file numbers (three facilities, at most ten messages each)."""


@dataclass(slots=True)
class FeedSummary:
    """What `generate_feed` wrote: counts by message type and facility, expected outcomes."""

    outdir: Path
    residents: int
    messages: int = 0
    bad: int = 0
    expect_accept: int = 0
    observations: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    by_facility: Counter[str] = field(default_factory=Counter)


def _ensure_empty(outdir: Path) -> None:
    if outdir.exists() and (not outdir.is_dir() or any(outdir.iterdir())):
        raise InvalidInput(f"output directory {outdir} exists and is not empty; choose a new one")
    outdir.mkdir(parents=True, exist_ok=True)


def generate_feed(outdir: Path, *, residents: int = 100, seed: int = 1, bad: bool = True,
                  chunk_size: int = 1000, progress: Callable[[int], None] | None = None) -> FeedSummary:
    """Write a synthetic feed for `residents` residents into the empty or new `outdir`.

    Deterministic per (`residents`, `seed`, `bad`): the same arguments give byte-identical
    files. `progress` is called with the number of residents done after each chunk.

    Raises: InvalidInput when `residents` < 1 or `outdir` exists and is not empty.
    """
    if residents < 1:
        raise InvalidInput("residents must be at least 1")
    _ensure_empty(outdir)
    summary = FeedSummary(outdir=outdir, residents=residents)
    width = max(5, len(str(residents * MAX_MESSAGES_PER_RESIDENT)))
    key_width = max(6, len(str(residents - 1)))
    for f in FACILITIES:
        (outdir / "feeds" / f.code).mkdir(parents=True, exist_ok=True)
    (outdir / "facilities.json").write_text(
        json.dumps([describe(f) for f in FACILITIES], ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    counters = Counters()
    number = 0
    with (outdir / "truth.jsonl").open("w", encoding="utf-8") as truth_out, \
            (outdir / "residents.jsonl").open("w", encoding="utf-8") as residents_out:
        for lo in range(0, residents, chunk_size):
            events: list[Event] = []
            for index in range(lo, min(lo + chunk_size, residents)):
                rng = random.Random(f"hie-synth:{seed}:{index}")
                resident = make_resident(rng, f"R{index:0{key_width}d}", START.date())
                residents_out.write(json.dumps(resident.as_json(), ensure_ascii=False) + "\n")
                events.extend(plan_resident(rng, index, resident, counters))
            events.sort(key=lambda e: (e.when, e.resident_index, e.seq))
            for event in events:
                number += 1
                _write_event(outdir, f"{number:0{width}d}", event, truth_out, summary)
            if progress is not None:
                progress(min(lo + chunk_size, residents))
        if bad:
            _write_bad(outdir, f"S{seed}", truth_out, summary)
    return summary


def _write_event(outdir: Path, number: str, event: Event, truth_out: IO[str], summary: FeedSummary) -> None:
    rel = f"feeds/{event.facility.code}/{number}.hl7"
    (outdir / rel).write_bytes(encode(event.facility, event.segments))
    record: dict[str, Any] = {"file": rel, "facility": event.facility.code, **event.truth,
                              "expect": "accept", "charset": event.facility.charset,
                              "terminator": event.facility.terminator}
    truth_out.write(json.dumps(record, ensure_ascii=False) + "\n")
    summary.messages += 1
    summary.expect_accept += 1
    summary.observations += len(event.truth.get("observations", ()))
    summary.by_type[event.message_type] += 1
    summary.by_facility[event.facility.code] += 1


def _write_bad(outdir: Path, prefix: str, truth_out: IO[str], summary: FeedSummary) -> None:
    folder = outdir / "feeds" / "BAD"
    folder.mkdir(parents=True, exist_ok=True)
    for name, data, truth in bad_messages(prefix):
        (folder / name).write_bytes(data)
        record = {"file": f"feeds/BAD/{name}", "facility": "BAD", **truth}
        truth_out.write(json.dumps(record, ensure_ascii=False) + "\n")
        summary.bad += 1
        if truth["expect"].startswith("accept"):
            summary.expect_accept += 1


def today() -> date:
    """The synthetic calendar's first day (ages are computed against it)."""
    return START.date()
