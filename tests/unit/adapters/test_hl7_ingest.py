"""IngestService end to end on MemoryStore, SQLite and PostgreSQL (no sockets): the whole sample feed,
duplicates, the error queue and replay, store failure, enhanced acknowledgement mode."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from adapters.hl7v2.ack import read_ack
from adapters.ingest import IngestService
from adapters.settings import FacilitySettings, IngestSettings
from ehr_store import MemoryStore, SqlStore, Store, StoreSettings, Unavailable, VersionConflict, json_loads

sys.path.insert(0, str(Path(__file__).parent))
import hl7_messages as M

ACCEPTED = {"AA", "CA"}
NAKS = {"AE", "AR", "CE", "CR"}


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ingest_store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        store: Store = MemoryStore(StoreSettings(database_url="memory://"))
    elif request.param == "sqlite":
        store = SqlStore(StoreSettings(database_url=request.getfixturevalue("sqlite_url")))
    else:
        store = SqlStore(StoreSettings(database_url=request.getfixturevalue("pg_store_url"), pool_size=4))
    try:
        yield store
    finally:
        store.close()


def read_json(store: Store, rtype: str, rid: str) -> dict[str, Any]:
    with store.unit_of_work() as uow:
        doc: dict[str, Any] = json_loads(uow.resources.read(rtype, rid).content)
        return doc


def test_whole_sample_feed(
    ingest_store: Store,
    ingest_settings: IngestSettings,
    sample_feed: Path,
    sample_truth: list[dict[str, Any]],
) -> None:
    svc = IngestService(ingest_store, ingest_settings)
    for row in sample_truth:
        raw = (sample_feed / row["file"]).read_bytes()
        result = svc.ingest(raw, transport="test", peer="127.0.0.1")
        codes = [read_ack(f).code for f in result.frames]
        expect = row.get("expect", "")
        if expect.startswith("reject"):
            info = read_ack(result.frames[0])
            assert info.code in NAKS and info.errors, (row["file"], codes)
            assert result.message_id is not None
        else:
            assert codes[0] in ACCEPTED and result.outcome == "AA", (row["file"], codes, read_ack(result.ack))
    queue = svc.error_queue()
    rejects = [r for r in sample_truth if r.get("expect", "").startswith("reject")]
    assert len(queue) == len(rejects)
    assert {m.raw for m in queue} == {(sample_feed / r["file"]).read_bytes() for r in rejects}
    # bad05: accepted, 身份证号 flagged and never under the resident-id system
    patient = read_json(ingest_store, "Patient", "QYRMYY-X5")
    flagged = [i for i in patient["identifier"] if i["value"] == "441802198001010010"]
    assert flagged[0]["system"] == "urn:qyhie:resident-id:invalid"
    # A40: the merged-away Patient is inactive and points at the survivor, which points back
    merge = next(r for r in sample_truth if r["type"] == "ADT^A40")
    fac = merge["facility"]
    old = read_json(ingest_store, "Patient", f"{fac}-{merge['merged']}")
    assert old["active"] is False
    assert {"other": {"reference": f"Patient/{fac}-{merge['into']}"}, "type": "replaced-by"} in old["link"]
    assert old.get("name"), "the merged Patient keeps its data"
    survivor = read_json(ingest_store, "Patient", f"{fac}-{merge['into']}")
    assert {"other": {"reference": f"Patient/{fac}-{merge['merged']}"}, "type": "replaces"} in survivor[
        "link"
    ]


def test_a08_replaces_the_phone_and_keeps_the_rest(
    ingest_store: Store, sample_feed: Path, sample_truth: list[dict[str, Any]]
) -> None:
    svc = IngestService(ingest_store, IngestSettings(default_assume_offset="+08:00"))
    upd = next(r for r in sample_truth if r["type"] == "ADT^A08")
    raw = (sample_feed / upd["file"]).read_bytes()
    mrn = re.search(rb"PID\|1\|\|([A-Z0-9]+)\^", raw)
    assert mrn is not None
    earlier = [
        r
        for r in sample_truth
        if r["file"] < upd["file"] and r.get("person") == upd["person"] and r["facility"] == upd["facility"]
    ]
    for row in [*earlier, upd]:
        assert (
            read_ack(svc.handle((sample_feed / row["file"]).read_bytes(), transport="test")).code in ACCEPTED
        )
    updated = read_json(ingest_store, "Patient", f"{upd['facility']}-{mrn.group(1).decode()}")
    assert [t["value"] for t in updated["telecom"]] == [upd["phone"]] and updated.get("address")


def test_duplicate_replays_the_stored_ack_and_writes_nothing(ingest_store: Store) -> None:
    svc = IngestService(ingest_store)
    first = svc.ingest(M.ADT_A01_FULL.encode(), transport="test")
    with ingest_store.unit_of_work() as uow:
        version = uow.resources.read("Patient", "QYRMYY-QY0200001").version_id
        count = len(uow.messages.list(limit=1000))
    again = svc.ingest(M.ADT_A01_FULL.encode(), transport="test")
    assert again.duplicate and again.frames == (first.frames[0],)
    with ingest_store.unit_of_work() as uow:
        assert uow.resources.read("Patient", "QYRMYY-QY0200001").version_id == version
        assert len(uow.messages.list(limit=1000)) == count


def test_update_message_updates_never_duplicates_and_null_deletes(ingest_store: Store) -> None:
    svc = IngestService(ingest_store)
    assert read_ack(svc.handle(M.ADT_A01_FULL.encode(), transport="test")).code == "AA"
    assert read_ack(svc.handle(M.ADT_A08_NULL.encode(), transport="test")).code == "AA"
    patient = read_json(ingest_store, "Patient", "QYRMYY-QY0200001")
    assert "address" not in patient  # sent as "" → deleted
    assert patient["telecom"]  # left empty → kept
    with ingest_store.unit_of_work() as uow:
        assert uow.resources.count("Patient", [("identifier", "QY0200001")]) == 1


def test_all_message_families_are_accepted(ingest_store: Store) -> None:
    svc = IngestService(ingest_store)
    for text in (M.ADT_A01_FULL, M.ORU_VALUE_TYPES, M.OML_O21, M.MDM_T02, M.SIU_S12, M.SIU_S15, M.DFT_P03):
        info = read_ack(svc.handle(text.encode(), transport="test"))
        assert info.code == "AA", (text[:60], info)
    assert read_json(ingest_store, "Appointment", "QYRMYY-appt-APT55")["status"] == "cancelled"
    sr = read_json(ingest_store, "ServiceRequest", "QYRMYY-sr-PL9001")
    assert any(i["type"]["coding"][0]["code"] == "ACSN" and i["value"] == "ACC9001" for i in sr["identifier"])


class BrokenStore:
    """A store whose resource writes fail like a database that went away (archive still works)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.broken = True

    @contextmanager
    def unit_of_work(self, *, write: bool = False, durable: bool = True) -> Iterator[Any]:
        with self.inner.unit_of_work(write=write, durable=durable) as uow:
            yield _BrokenUnit(uow) if self.broken else uow


class _BrokenUnit:
    """A unit of work whose resource repository is gone (its message archive still works)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.messages = inner, inner.messages

    @property
    def resources(self) -> Any:
        raise Unavailable("database is down")

    def commit(self) -> None:
        self.inner.commit()

    def rollback(self) -> None:
        self.inner.rollback()

    def check_schema(self) -> None:
        self.inner.check_schema()

    def close(self) -> None:
        self.inner.close()


def test_store_failure_gives_ar_207_keeps_the_message_and_replay_fixes_it(ingest_store: Store) -> None:
    broken = BrokenStore(ingest_store)
    svc = IngestService(broken)  # type: ignore[arg-type]
    result = svc.ingest(M.ADT_A01_FULL.encode(), transport="test")
    info = read_ack(result.ack)
    assert info.code == "AR" and info.errors[0][0] == "207"
    queued = svc.error_queue()
    assert [m.id for m in queued] == [result.message_id] and queued[0].status == "rejected"
    # the sender retries the same control id: processed again, not replayed as AR
    broken.broken = False
    retry = svc.ingest(M.ADT_A01_FULL.encode(), transport="test")
    assert read_ack(retry.ack).code == "AA" and not retry.duplicate
    # and the operator's replay of the queued copy is now processed too
    replayed = svc.replay(result.message_id or 0)
    assert replayed.outcome == "AA" and svc.error_queue() == []


def test_replay_all_after_a_settings_fix(ingest_store: Store) -> None:
    # MSH-18 claims UTF-8 but the sender writes GB18030: AE 102 until the facility is configured
    wrong = M.ADT_A01_FULL.encode("gb18030")
    before = IngestService(ingest_store, IngestSettings())
    info = read_ack(before.handle(wrong, transport="test"))
    assert info.code == "AE" and info.errors[0][0] == "102"
    bad_date = M.ADT_A01_FULL.replace("19900101|F", "19901301|F").replace("|M1001|", "|M4001|").encode()
    assert read_ack(before.handle(bad_date, transport="test")).code == "AE"
    assert len(before.error_queue()) == 2
    fixed = IngestService(
        ingest_store, IngestSettings(facilities={"QYRMYY": FacilitySettings(charset="GB18030")})
    )
    results = fixed.replay_all()
    assert sorted(r.outcome for r in results) == ["AA", "AE"]  # the bad date stays queued
    assert [m.control_id for m in fixed.error_queue()] == ["M4001"]
    patient = read_json(ingest_store, "Patient", "QYRMYY-QY0200001")
    assert patient["name"][0]["text"] == "林小红"
    with ingest_store.unit_of_work() as uow:
        row = uow.messages.get(results[0].message_id or 0)
    assert row.status == "processed" and row.charset == "gb18030" and row.attempts >= 2


def test_msh18_empty_is_detected_and_recorded(ingest_store: Store) -> None:
    raw = M.ADT_A01_FULL.replace("UNICODE UTF-8", "").encode("gb18030")
    info = read_ack(IngestService(ingest_store).handle(raw, transport="test"))
    assert info.code == "AA" and any("gb18030" in text for _c, text in info.errors)


def test_enhanced_mode_accept_ack_then_application_ack(ingest_store: Store) -> None:
    svc = IngestService(ingest_store)
    base = M.ADT_A01_FULL.replace("|P|2.5|||||CHN|", "|P|2.5|||AL|AL|CHN|")
    result = svc.ingest(base.encode(), transport="test")
    assert [read_ack(f).code for f in result.frames] == ["CA", "AA"]
    ne = M.ORU_VALUE_TYPES.replace("|P|2.5|||||CHN|", "|P|2.5|||AL|NE|CHN|").replace("4.20", "x")
    result = svc.ingest(ne.encode(), transport="test")
    assert [read_ack(f).code for f in result.frames] == ["CA"] and result.outcome == "AE"
    er = ne.replace("|AL|NE|", "|AL|ER|").replace("|M1002|", "|M3002|")
    result = svc.ingest(er.encode(), transport="test")
    assert [read_ack(f).code for f in result.frames] == ["CA", "AE"]
    bad_version = base.replace("|P|2.5|", "|P|9.9|").replace("|M1001|", "|M3001|")
    result = svc.ingest(bad_version.encode(), transport="test")
    assert [read_ack(f).code for f in result.frames] == ["CR"]
    # a resend (after a dropped connection, say) gets both ACKs again, nothing written twice
    again = svc.ingest(base.encode(), transport="test")
    assert again.duplicate and [read_ack(f).code for f in again.frames] == ["CA", "AA"]
    again = svc.ingest(er.encode(), transport="test")
    assert again.duplicate and [read_ack(f).code for f in again.frames] == ["CA", "AE"]


class RecordingStore:
    """The inner store, recording each unit's (write, durable) and whether it committed."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.units: list[tuple[bool, bool]] = []

    @contextmanager
    def unit_of_work(self, *, write: bool = False, durable: bool = True) -> Iterator[Any]:
        self.units.append((write, durable))
        with self.inner.unit_of_work(write=write, durable=durable) as uow:
            yield uow


def test_archive_waits_for_the_disk_only_when_an_accept_ack_follows_it(ingest_store: Store) -> None:
    """Original mode: the archive unit is relaxed (durable=False); the ACK follows the
    durable unit that writes the outcome, which makes the archive durable with it. Enhanced
    mode: the CA is sent right after the archive commit, so that unit is durable."""
    recording = RecordingStore(ingest_store)
    svc = IngestService(recording)  # type: ignore[arg-type]
    original = [M.ADT_A01_FULL.replace("|M1001|", f"|D{i}|").encode() for i in range(3)]
    accs = svc.accept_many(original, transport="test")
    assert recording.units == [(True, False)] and all(a.frames == [] for a in accs)
    frames = svc.process_many(accs)
    assert [read_ack(f[0]).code for f in frames] == ["AA"] * 3
    assert recording.units[1:] == [(True, True)]  # resources + outcome: durable, then the AA
    recording.units.clear()
    enhanced = M.ADT_A01_FULL.replace("|P|2.5|||||CHN|", "|P|2.5|||AL|AL|CHN|").replace("|M1001|", "|D9|")
    accs = svc.accept_many([original[0].replace(b"|D0|", b"|D8|"), enhanced.encode()], transport="test")
    assert recording.units == [(True, True)] and read_ack(accs[1].frames[0]).code == "CA"
    recording.units.clear()
    bad = M.ADT_A01_FULL.replace("|P|2.5|", "|P|9.9|").replace("|M1001|", "|D7|").encode()
    result = svc.ingest(bad, transport="test")  # refused at accept: its AR follows a durable unit
    assert read_ack(result.ack).code == "AR" and recording.units == [(True, False), (False, True)]
    with ingest_store.unit_of_work() as uow:
        assert uow.messages.get(result.message_id).status == "rejected"  # type: ignore[arg-type]


def test_garbage_gets_an_ar_and_is_archived(ingest_store: Store) -> None:
    svc = IngestService(ingest_store)
    result = svc.ingest(b"\x00\xff hello", transport="test")
    assert read_ack(result.ack).code == "AR" and result.message_id is not None
    with ingest_store.unit_of_work() as uow:
        assert uow.messages.get(result.message_id).raw == b"\x00\xff hello"


def test_sample_feed_with_the_empi_identity_hook(
    sample_feed: Path, sample_truth: list[dict[str, Any]], ingest_settings: IngestSettings
) -> None:
    from ehr_store.empi import EmpiService, is_golden

    store = MemoryStore(StoreSettings(database_url="memory://"))
    svc = IngestService(store, ingest_settings, identity_hooks=EmpiService())
    for row in sample_truth:
        result = svc.ingest((sample_feed / row["file"]).read_bytes(), transport="test")
        expected = "reject" if row.get("expect", "").startswith("reject") else "AA"
        assert (result.outcome == "AA") == (expected == "AA"), row["file"]
    with store.unit_of_work() as uow:
        patients = [
            json_loads(p.content) for p in uow.resources.search("Patient", [("_count", "1000")]).matches
        ]
    golden = [p for p in patients if is_golden(p)]
    sources = [p for p in patients if not is_golden(p)]
    assert golden and len(golden) < len(sources)
    # every source Patient refers to its resident's golden record
    assert all(any(link["type"] in ("refer", "replaced-by") for link in p.get("link", [])) for p in sources)
    merge = next(r for r in sample_truth if r["type"] == "ADT^A40")
    old = next(p for p in sources if p["id"] == f"{merge['facility']}-{merge['merged']}")
    assert old["active"] is False and any(link["type"] == "replaced-by" for link in old["link"])


def test_conformance_check_reports_hl7apy_findings_as_warnings(ingest_store: Store) -> None:
    settings = IngestSettings(facilities={"QYRMYY": FacilitySettings(conformance_check=True)})
    no_evn = M.ADT_A01_FULL.replace("EVN|A01|20261002093000+0800\r", "")
    info = read_ack(IngestService(ingest_store, settings).handle(no_evn.encode(), transport="test"))
    assert info.code == "AA"
    assert any(text.startswith("hl7apy:") and "EVN" in text for _c, text in info.errors)


def test_a_result_message_does_not_reset_the_encounter_status(ingest_store: Store) -> None:
    svc = IngestService(ingest_store)
    assert read_ack(svc.handle(M.ADT_A01_FULL.encode(), transport="test")).code == "AA"
    assert read_json(ingest_store, "Encounter", "QYRMYY-enc-V900001")["status"] == "in-progress"
    assert read_ack(svc.handle(M.ORU_VALUE_TYPES.encode(), transport="test")).code == "AA"
    assert read_json(ingest_store, "Encounter", "QYRMYY-enc-V900001")["status"] == "in-progress"
    discharge = M.ADT_A01_FULL.replace("ADT^A01^ADT_A01|M1001", "ADT^A03^ADT_A03|M5001")
    assert read_ack(svc.handle(discharge.encode(), transport="test")).code == "AA"
    assert read_json(ingest_store, "Encounter", "QYRMYY-enc-V900001")["status"] == "finished"


class FailingHooks:
    """Identity hooks that fail for one MRN, as an EMPI outage for that resident would."""

    def __init__(self, bad_patient: str) -> None:
        self.bad_patient = bad_patient
        self.seen: list[str] = []

    def on_source_patient(self, repo: Any, stored_patient: Any) -> None:
        if stored_patient.id == self.bad_patient:
            raise Unavailable("EMPI index unavailable")
        self.seen.append(stored_patient.id)

    def on_merge(self, repo: Any, survivor: Any, merged: Any) -> None:
        raise AssertionError("no merge expected")


def test_group_commit_isolates_a_failing_message(ingest_store: Store) -> None:
    svc = IngestService(ingest_store, identity_hooks=FailingHooks("QYRMYY-QY0200002"))
    raws = [
        M.ADT_A01_FULL.replace("|M1001|", f"|G{i}|").replace("QY0200001", f"QY020000{i}").encode()
        for i in (1, 2, 3)
    ]
    accs = svc.accept_many(raws, transport="test")
    results = svc.process_many(accs)
    codes = [read_ack(frames[-1]).code for frames in results]
    assert codes == ["AA", "AR", "AA"]
    assert read_ack(results[1][-1]).errors[0][0] == "207"
    with ingest_store.unit_of_work() as uow:
        assert uow.resources.read("Patient", "QYRMYY-QY0200001").version_id == 1
        assert uow.resources.read("Patient", "QYRMYY-QY0200003").version_id == 1
        assert not uow.resources.read_many([("Patient", "QYRMYY-QY0200002")])
    assert [m.control_id for m in svc.error_queue()] == ["G2"]


def test_a_patient_another_writer_changed_is_written_again_by_its_next_message(ingest_store: Store) -> None:
    """The reference cache skips a resource mapped as this service last wrote it only while that
    version is current: another MLLP process, the FHIR API or the EMPI may have written since."""
    svc = IngestService(ingest_store)
    assert read_ack(svc.handle(M.ADT_A01_FULL.encode(), transport="test")).code == "AA"
    sent = read_json(ingest_store, "Patient", "QYRMYY-QY0200001")
    with ingest_store.unit_of_work(write=True) as uow:  # another writer changes the phone
        changed = {**sent, "telecom": [{"system": "phone", "value": "13800009999"}]}
        uow.resources.update("Patient", "QYRMYY-QY0200001", changed)
        uow.commit()
    resend = M.ADT_A01_FULL.replace("|M1001|", "|M1001B|")
    assert resend != M.ADT_A01_FULL
    assert read_ack(svc.handle(resend.encode(), transport="test")).code == "AA"
    again = read_json(ingest_store, "Patient", "QYRMYY-QY0200001")
    assert again["telecom"] == sent["telecom"] and again["meta"]["versionId"] == "3"
    # unchanged since: the next identical message skips it (no new version)
    third = resend.replace("|M1001B|", "|M1001C|")
    assert read_ack(svc.handle(third.encode(), transport="test")).code == "AA"
    assert read_json(ingest_store, "Patient", "QYRMYY-QY0200001")["meta"]["versionId"] == "3"


def test_a_group_write_that_lost_a_race_is_tried_again_as_a_group(
    ingest_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another MLLP process created one of the batch's new resources first (the store's
    VersionConflict): the batch is written again as one unit, not message by message."""
    svc = IngestService(ingest_store)
    real_write = svc._write
    sizes: list[int] = []

    def racing(ready: Any) -> Any:
        sizes.append(len(ready))
        if len(sizes) == 1:
            raise VersionConflict("a resource was created concurrently; retry")
        return real_write(ready)

    monkeypatch.setattr(svc, "_write", racing)
    raws = [
        M.ADT_A01_FULL.replace("|M1001|", f"|R{i}|").replace("QY0200001", f"QY020000{i}").encode()
        for i in (1, 2)
    ]
    results = svc.process_many(svc.accept_many(raws, transport="test"))
    assert [read_ack(frames[-1]).code for frames in results] == ["AA", "AA"]
    assert sizes == [2, 2]
    with ingest_store.unit_of_work() as uow:
        assert uow.resources.read("Patient", "QYRMYY-QY0200002").version_id == 1


def test_a_copy_another_process_wrote_meanwhile_is_answered_not_written_again(ingest_store: Store) -> None:
    """Two MLLP processes (two services on one store) each archive a copy of one A04, sent on
    two connections before either was answered; the first is processed, then an A08 changes
    the phone; the second copy must not put the A04's phone back: it gets the first's ACK."""
    first, second = IngestService(ingest_store), IngestService(ingest_store)
    raw = M.ADT_A01_FULL.encode()
    (copy_1,) = first.accept_many([raw], transport="test")
    (copy_2,) = second.accept_many([raw], transport="test")
    assert not copy_2.duplicate  # nothing answered yet when it was archived
    (frames_1,) = first.process_many([copy_1])
    assert read_ack(frames_1[-1]).code == "AA"
    assert read_ack(first.handle(M.ADT_A08_NULL.encode(), transport="test")).code == "AA"
    updated = read_json(ingest_store, "Patient", "QYRMYY-QY0200001")
    (frames_2,) = second.process_many([copy_2])
    assert frames_2 == frames_1  # the first copy's ACK
    assert read_json(ingest_store, "Patient", "QYRMYY-QY0200001") == updated
    with ingest_store.unit_of_work() as uow:
        row = uow.messages.get(copy_2.message_id or 0)
    assert row.status == "processed" and f"copy of message {copy_1.message_id}" in (row.error or "")
    # an operator's forced replay of the first copy (after a mapping fix) writes it again
    forced = first.replay(copy_1.message_id or 0, force=True)
    assert forced.outcome == "AA" and not forced.duplicate
    rewritten = read_json(ingest_store, "Patient", "QYRMYY-QY0200001")
    assert rewritten["meta"]["versionId"] != updated["meta"]["versionId"]


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_copies_sent_at_the_same_moment_to_two_processes_are_written_once(
    backend: str, request: pytest.FixtureRequest
) -> None:
    """Real threads, two services (as two MLLP processes), one database: each of 12 messages
    arrives at both at the same moment. Each is written once: one service answers from the
    other's outcome (at archive time or, when both archived first, in its write unit under
    the message key's lock), so no Provenance gets a second version."""
    import threading

    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_store_url")
    store = SqlStore(StoreSettings(database_url=url, pool_size=4))
    try:
        services = [IngestService(store), IngestService(store)]
        raws = [M.ADT_A01_FULL.replace("|M1001|", f"|T{n}|").encode() for n in range(12)]
        results: list[list[Any]] = [[], []]

        def run(k: int, gate: threading.Barrier) -> None:
            for raw in raws:
                gate.wait(30)
                results[k].append(services[k].ingest(raw, transport="test"))

        gate = threading.Barrier(2)
        threads = [threading.Thread(target=run, args=(k, gate)) for k in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert all(len(r) == len(raws) for r in results)
        for a, b in zip(*results, strict=True):
            assert read_ack(a.ack).code == read_ack(b.ack).code == "AA"
            assert [a.duplicate, b.duplicate].count(True) == 1  # exactly one of them wrote it
        with store.unit_of_work() as uow:
            provenance = uow.resources.search("Provenance", [("_count", "100")], strict=True)
            versions = {json_loads(e.content)["meta"]["versionId"] for e in provenance.matches}
        assert len(provenance.matches) == len(raws) and versions == {"1"}
    finally:
        store.close()
