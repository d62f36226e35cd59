"""Issue 4 "Done when": after ingesting `../shared/samples/feed-small/`, pairwise linking of
facility MRNs into residents reaches precision ≥ 0.99 and recall ≥ 0.95, measured through
the FHIR API only (`Patient?identifier=<MRN>` → the source Patient → `link refer` → the
golden Patient; ground truth from `truth.jsonl` person keys), on SQLite and PostgreSQL; and
`Patient/{id}/$everything` on a golden and on a source Patient returns every facility's
part of the resident record (paging followed to the end).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from itertools import combinations
from typing import Any

import pytest
from feed_world import FEED, World, all_pages, build_world, field_value, get, segments, truth

pytestmark = pytest.mark.slow

Json = dict[str, Any]
GOLDEN = "http://qingyuan-hie.cn/fhir/CodeSystem/empi|golden"
EXPECTED_TYPE = {
    "ADT^A04": "Condition",
    "ORU^R01": "DiagnosticReport",
    "ORM^O01": "ServiceRequest",
    "VXU^V04": "Immunization",
}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if request.param == "sqlite":
        from ehr_store import upgrade_schema

        url = f"sqlite:///{tmp_path_factory.mktemp('linking') / 'hie.db'}"
        upgrade_schema(url)
    else:
        from ehr_store import upgrade_schema

        url = request.getfixturevalue("make_postgres_database")()
        upgrade_schema(url)
    built = build_world(url)
    try:
        yield built
    finally:
        built.close()


def mrn_truth() -> dict[tuple[str, str], str]:
    """(facility, MRN) → resident key, for every MRN the accepted messages carry (PID-3, and
    MRG-1 of the A40 merges)."""
    out: dict[tuple[str, str], str] = {}
    for row in truth():
        if "person" not in row:
            continue
        segs = segments(FEED / row["file"])
        out[(row["facility"], field_value(segs, "PID", 3))] = row["person"]
        merged = field_value(segs, "MRG", 1)
        if merged:
            out[(row["facility"], merged)] = row["person"]
    return out


def resolve_golden(world: World, mrn: str) -> tuple[str, str]:
    """(source Patient id, golden Patient id) for an MRN, through the FHIR API only.

    `Patient?identifier=<MRN>` must find exactly one Patient (the source); a merged-away one
    is followed along `replaced-by` to its survivor, then `link refer` to the golden."""
    found = get(world.client, "Patient", identifier=mrn)
    patients = [e["resource"] for e in found.get("entry", [])]
    assert len(patients) == 1, f"Patient?identifier={mrn} should find one source Patient: {patients}"
    source = patients[0]
    current = source
    for _ in range(5):
        links = {link["type"]: link["other"]["reference"] for link in current.get("link", [])}
        if "refer" in links:
            return source["id"], links["refer"].split("/")[1]
        assert "replaced-by" in links, f"Patient/{current['id']} has no refer or replaced-by link"
        current = get(world.client, links["replaced-by"])
    raise AssertionError(f"no golden Patient reached from MRN {mrn}")


def pairwise(truth_of: dict[Any, str], predicted: dict[Any, str]) -> tuple[float, float, int]:
    """(precision, recall, true pairs) of "same resident" over all pairs of MRNs."""
    tp = fp = fn = 0
    for a, b in combinations(sorted(truth_of), 2):
        same_truth, same_pred = truth_of[a] == truth_of[b], predicted[a] == predicted[b]
        tp += same_truth and same_pred
        fp += same_pred and not same_truth
        fn += same_truth and not same_pred
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, tp + fn


def test_pairwise_linking_of_mrns_into_residents(world: World) -> None:
    truth_of = mrn_truth()
    predicted = {key: resolve_golden(world, key[1])[1] for key in truth_of}
    precision, recall, true_pairs = pairwise(truth_of, predicted)
    print(f"MRNs {len(truth_of)}, true pairs {true_pairs}: precision {precision:.4f} recall {recall:.4f}")
    assert true_pairs > 20, "the feed should register residents at several facilities"
    assert precision >= 0.99, f"precision {precision:.4f}"
    assert recall >= 0.95, f"recall {recall:.4f}"
    # each golden is a resident record: tagged, and its MRNs are not searchable identifiers
    golden = get(world.client, f"Patient/{next(iter(predicted.values()))}")
    assert GOLDEN.split("|")[1] in [t["code"] for t in golden["meta"]["tag"]]


def everything_of(world: World, patient_id: str, count: int = 7) -> list[Json]:
    """All resources of `Patient/{id}/$everything`, following `next` to the end (small pages)."""
    return list(all_pages(world.client, f"Patient/{patient_id}/$everything", _count=str(count)))


def test_everything_on_golden_and_source_covers_every_facility(world: World) -> None:
    rows_of: dict[str, list[Json]] = defaultdict(list)
    for row in truth():
        if "person" in row:
            rows_of[row["person"]].append(row)
    # the residents seen at the most facilities, plus one seen at a single facility
    by_spread = sorted(rows_of, key=lambda p: (-len({r["facility"] for r in rows_of[p]}), p))
    chosen = [*by_spread[:6], by_spread[-1]]
    for person in chosen:
        rows = rows_of[person]
        mrn = field_value(segments(FEED / rows[0]["file"]), "PID", 3)
        source_id, golden_id = resolve_golden(world, mrn)
        for start in (golden_id, source_id):
            resources = everything_of(world, start)
            refs = [f"{r['resourceType']}/{r['id']}" for r in resources]
            assert len(refs) == len(set(refs)), f"$everything on {start} repeats resources"
            seen: dict[str, set[str]] = defaultdict(set)
            for r in resources:
                facility = r.get("meta", {}).get("source", "").removeprefix("urn:qyhie:facility:")
                seen[facility].add(r["resourceType"])
            for row in rows:
                want = EXPECTED_TYPE.get(row["type"])
                if row["type"] == "ADT^A04" and not row.get("diag"):
                    want = "Patient"
                assert want is None or want in seen[row["facility"]], (
                    f"{person}: $everything on Patient/{start} lacks the {want} from {row['file']}"
                )
            assert f"Patient/{golden_id}" in refs and f"Patient/{source_id}" in refs
            reports = {r["id"] for r in resources if r["resourceType"] == "DiagnosticReport"}
            expected_reports = {(r["facility"], r["control_id"]) for r in rows if r["type"] == "ORU^R01"}
            assert len(reports) == len(expected_reports), f"{person}: reports {reports}"
