"""Terminology benchmark: `$expand` of all ICD-10 under a chapter, then `$translate` of each answer.

For each ICD-10 chapter (or those given), times `ValueSet/$expand` of the implicit value
set `http://hl7.org/fhir/sid/icd-10?fhir_vs=isa/<chapter>` (cold: first expansion;
warm: cached, with a text `filter`), then `ConceptMap/$translate` of every code in the
answer (to WHO ICD-10 and notifiable diseases), and `translate_coding` of the sample
feed's local codes. Prints p50/p95/max in ms; the issue's target is p95 ≤ 20 ms.

    .venv/bin/python bench/bench_terminology.py                # every chapter
    .venv/bin/python bench/bench_terminology.py --chapters I IX --store memory
    .venv/bin/python bench/bench_terminology.py --store sqlite  # index built from a SQLite store

`--store` (memory | sqlite) loads the content with `TerminologyService.load_content` and
builds the index from the store (also timed); without it the index is built from the
shipped resources directly.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ehr_store import MemoryStore, SqlStore, Store, StoreSettings, upgrade_schema
from terminology import (
    In,
    TerminologyIndex,
    TerminologyService,
    Translator,
    expand,
    shipped_resources,
    translate,
)
from terminology.canonical import ICD10

CHAPTERS = [
    "I",
    "II",
    "III",
    "IV",
    "V",
    "VI",
    "VII",
    "VIII",
    "IX",
    "X",
    "XI",
    "XII",
    "XIII",
    "XIV",
    "XV",
    "XVI",
    "XVII",
    "XVIII",
    "XIX",
    "XX",
    "XXI",
    "XXII",
]


def _ms(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def _stats(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return (
        f"{name:<38} n={len(samples):>6}  p50={statistics.median(ordered):7.3f} ms  "
        f"p95={p95:7.3f} ms  max={ordered[-1]:7.3f} ms  {'OK' if p95 <= 20 else 'OVER 20 ms'}"
    )


def _index(store_kind: str | None, workdir: Path) -> TerminologyIndex:
    if store_kind is None:
        took, index = _ms(lambda: TerminologyIndex.from_resources(shipped_resources()))
        print(f"index from shipped resources: {took:.0f} ms")
        return index  # type: ignore[no-any-return]
    store: Store
    if store_kind == "sqlite":
        url = f"sqlite:///{workdir / 'bench.db'}"
        upgrade_schema(url)
        store = SqlStore(StoreSettings(database_url=url))
    else:
        store = MemoryStore()
    service = TerminologyService(store)
    took, report = _ms(service.load_content)
    print(f"load_content into {store_kind}: {took:.0f} ms ({len(report.created)} resources)")
    took, index = _ms(service.index)
    print(f"index from the {store_kind} store: {took:.0f} ms")
    store.close()
    return index  # type: ignore[no-any-return]


def run(chapters: list[str], store_kind: str | None) -> None:
    """Run the benchmark and print the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        index = _index(store_kind, Path(tmp))
    cold, warm, per_code = [], [], []
    codes_total = 0
    for chapter in chapters:
        url = f"{ICD10}?fhir_vs=isa/{chapter}"
        took, result = _ms(lambda url=url: expand(index, In(query=[("url", url)])))  # type: ignore[misc]
        cold.append(took)
        took, _ = _ms(
            lambda url=url: expand(
                index,
                In(
                    query=[
                        ("url", url),
                        ("filter", "unspecified"),  # type: ignore[misc]
                        ("count", "50"),
                    ]
                ),
            )
        )
        warm.append(took)
        for entry in result["expansion"]["contains"]:
            query = In(query=[("system", entry["system"]), ("code", entry["code"])])
            took, _ = _ms(lambda query=query: translate(index, query))  # type: ignore[misc]
            per_code.append(took)
        codes_total += result["expansion"]["total"]
    print(f"chapters: {len(chapters)}, codes expanded and translated: {codes_total}")
    print(_stats("$expand ICD-10 chapter (cold)", cold))
    print(_stats("$expand chapter + filter, count=50 (warm)", warm))
    print(_stats("$translate each code", per_code))
    translator = Translator(index)
    local = [("QYRMYY", "L", c) for c in ("HGB", "WBC", "PLT", "GLU", "ALT", "CREA", "TC", "HBA1C")]
    local += [("LZRMYY", "ICD10", c) for c in ("I10.x00x002", "E11.900", "U07.100", "J11.1", "A90")]
    samples = []
    for _ in range(200):
        for sender, system, code in local:
            took, _ = _ms(lambda s=sender, y=system, c=code: translator.translate_coding(s, y, c, None))  # type: ignore[misc]
            samples.append(took)
    print(_stats("translate_coding (ingestion)", samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chapters", nargs="*", default=CHAPTERS)
    parser.add_argument("--store", choices=["memory", "sqlite"], default=None)
    args = parser.parse_args()
    run(args.chapters, args.store)


if __name__ == "__main__":
    main()
