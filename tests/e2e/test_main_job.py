"""The README's main job, driven from outside through real sockets: `hie serve` on free ports
with a temporary SQLite database, a feed sent with `hie send` over MLLP, results checked
through the FHIR API — for the project's own synthetic feed and for the shared sample feed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from e2e_harness import (
    Expected,
    Server,
    expected_from_feed,
    feed_folders,
    hie,
    resident_id_query,
    search,
    source_patients,
    start_server,
    total,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SAMPLES = Path(os.environ.get("HIE_SAMPLES_DIR", REPO / ".." / "shared" / "samples"))


def _facilities_env(feed: Path) -> dict[str, str]:
    """Register the synthetic senders as an operator would (charset when MSH-18 is empty,
    +08:00 for senders whose times carry no offset), via `HIE_INGEST__FACILITIES`."""
    facilities = json.loads((feed / "facilities.json").read_text(encoding="utf-8"))
    registry = {
        f["code"]: {"name": f["name"], "charset": f["charset"],
                    **({} if f["timestamps_with_zone"] else {"assume_offset": "+08:00"})}
        for f in facilities
    }
    return {"HIE_INGEST__FACILITIES": json.dumps(registry, ensure_ascii=False)}


def _run_synthetic(work: Path, database_url: str | None) -> Iterator[tuple[Server, Path, str]]:
    feed = work / "feed"
    made = hie("synth", str(feed), "--residents", "40", "--seed", "2026")
    assert made.returncode == 0, made.stderr
    server = start_server(work, _facilities_env(feed), database_url)
    try:
        sent = hie("send", "--host", "127.0.0.1", "--port", str(server.mllp_port), *feed_folders(feed))
        yield server, feed, sent.stdout + sent.stderr + f"\n(exit status {sent.returncode})"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path, str]]:
    """The synthetic feed through `hie serve` on SQLite (the README's embedded default)."""
    yield from _run_synthetic(tmp_path_factory.mktemp("e2e-synth"), None)


@pytest.fixture(scope="module")
def synthetic_postgres(tmp_path_factory: pytest.TempPathFactory,
                       make_postgres_database: Callable[[], str]) -> Iterator[tuple[Server, Path, str]]:
    """The same feed through `hie serve` on PostgreSQL (an empty database of the test cluster)."""
    yield from _run_synthetic(tmp_path_factory.mktemp("e2e-synth-pg"), make_postgres_database())


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path, str]]:
    feed = SAMPLES / "feed-small"
    if not (feed / "truth.jsonl").exists():
        pytest.fail(f"shared sample feed not found at {feed} (set HIE_SAMPLES_DIR)")
    work = tmp_path_factory.mktemp("e2e-sample")
    server = start_server(work, {"HIE_INGEST__DEFAULT_ASSUME_OFFSET": "+08:00"})
    try:
        sent = hie("send", "--host", "127.0.0.1", "--port", str(server.mllp_port), *feed_folders(feed))
        yield server, feed, sent.stdout + sent.stderr + f"\n(exit status {sent.returncode})"
    finally:
        server.stop()


FEEDS = ["synthetic", "synthetic_postgres", "sample"]


@pytest.fixture(params=FEEDS)
def fed(request: pytest.FixtureRequest) -> tuple[Server, Path, str]:
    result: tuple[Server, Path, str] = request.getfixturevalue(request.param)
    return result


def _check_send_reported_rejections(exp: Expected, output: str) -> None:
    assert exp.rejected_files, "the feed should carry malformed examples"
    assert "(exit status 0)" not in output, f"hie send must exit non-zero on a rejection:\n{output}"


def test_every_accepted_patient_is_there(fed: tuple[Server, Path, str]) -> None:
    server, feed, output = fed
    exp = expected_from_feed(feed)
    _check_send_reported_rejections(exp, output)
    with httpx.Client(base_url=server.base, timeout=30) as client:
        missing = [m for m in sorted(exp.mrns) if not search(client, "/Patient", identifier=m).get("entry")]
        assert not missing, f"no Patient for MRNs {missing[:10]}\n{output[-1500:]}\n{server.log_tail()}"
        absent = [rid for rid in sorted(exp.resident_ids)
                  if not search(client, "/Patient", identifier=resident_id_query(rid)).get("entry")]
        assert not absent, f"身份证号 not found on any Patient: {len(absent)} of {len(exp.resident_ids)}"


def test_observations_match_the_feed_and_nothing_half_written(fed: tuple[Server, Path, str]) -> None:
    server, feed, output = fed
    exp = expected_from_feed(feed)
    with httpx.Client(base_url=server.base, timeout=30) as client:
        assert total(client, "Observation") == exp.observations, output[-1500:]
        assert total(client, "Immunization") == exp.types["VXU^V04"]
        for accession in sorted(exp.accessions):
            assert search(client, "/ServiceRequest", identifier=accession).get("entry"), accession
        # Rejected examples (MRNs X1..X8 in feeds/BAD) leave nothing behind; the accepted one
        # with a wrong check character is there, its 身份证号 kept but never used to link.
        for path in exp.rejected_files:
            mrn = f"X{path.stem[-1]}"
            found = search(client, "/Patient", identifier=mrn).get("entry")
            assert found is None, f"{path.name} was rejected but left {found}"


def test_merges_and_updates_are_applied(fed: tuple[Server, Path, str]) -> None:
    server, feed, _ = fed
    exp = expected_from_feed(feed)
    assert exp.merged_mrns and exp.updated_mrns
    with httpx.Client(base_url=server.base, timeout=30) as client:
        for mrn in sorted(exp.merged_mrns):
            (patient,) = source_patients(search(client, "/Patient", identifier=mrn))
            assert patient.get("active") is False, patient
            assert any(link["type"] == "replaced-by" for link in patient.get("link", [])), patient
        for mrn in sorted(exp.updated_mrns):
            patients = source_patients(search(client, "/Patient", identifier=mrn))
            assert patients, mrn
            for patient in patients:
                phones = [t.get("value") for t in patient.get("telecom", [])]
                assert phones == [exp.last_phone[mrn]], patient


def test_sending_again_writes_nothing_twice(synthetic: tuple[Server, Path, str]) -> None:
    server, feed, _ = synthetic
    with httpx.Client(base_url=server.base, timeout=30) as client:
        before = {t: total(client, t) for t in ("Patient", "Observation", "Encounter")}
        folder = next(p for p in feed_folders(feed) if p.endswith("QYRMYY"))
        again = hie("send", "--host", "127.0.0.1", "--port", str(server.mllp_port), folder)
        assert again.returncode == 0, again.stdout + again.stderr
        assert {t: total(client, t) for t in before} == before


def test_diagnoses_become_conditions_per_visit(synthetic: tuple[Server, Path, str]) -> None:
    server, feed, _ = synthetic
    rows = [json.loads(line) for line in (feed / "truth.jsonl").read_text(encoding="utf-8").splitlines()]
    by_code: dict[str, int] = {}
    for row in rows:
        if "diag" in row:
            by_code[row["diag"]] = by_code.get(row["diag"], 0) + 1
    assert any(row.get("notifiable") for row in rows)
    with httpx.Client(base_url=server.base, timeout=30) as client:
        found = {code: search(client, "/Condition", code=code, _summary="count")["total"] for code in by_code}
    assert found == by_code


def test_rejected_messages_wait_in_the_error_queue(fed: tuple[Server, Path, str]) -> None:
    server, feed, _ = fed
    exp = expected_from_feed(feed)
    listed = hie("errors", "list", "--database-url", server.database_url, "--limit", "500",
                 env={"COLUMNS": "250"})
    assert listed.returncode == 0, listed.stderr
    shown = re.search(r"error queue \((\d+) shown\)", listed.stdout)
    assert shown, listed.stdout[-2000:]
    assert int(shown.group(1)) == len(exp.rejected_files), listed.stdout[-3000:]
