"""Scoring, thresholds and linking over the in-memory store, including undoing a wrong link."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from ehr_store.empi import EmpiService, extract, is_golden, load_rules
from ehr_store.empi.golden import link_targets
from ehr_store.empi.operations import match, match_bundle
from ehr_store.empi.scoring import decide, score
from ehr_store.memory import MemoryStore
from ehr_store.resident_id import RESIDENT_ID_SYSTEM, check_character

from .feed import read_feed

RULES = load_rules()


def rid(first17: str) -> str:
    return first17 + check_character(first17)


def patient(
    name: str,
    birth: str,
    sex: str = "male",
    phone: str | None = "13800001234",
    village: str = "东围村",
    resident_id: str | None = None,
    mrn: str = "1",
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:qingyuan-hie:mrn:TEST", "value": mrn}],
        "name": [{"family": name[:1], "given": [name[1:]]}],
        "birthDate": birth,
        "gender": sex,
        "address": [{"line": [village, "石角镇"], "district": "441802"}],
    }
    if phone:
        doc["telecom"] = [{"system": "phone", "value": phone}]
    if resident_id:
        doc["identifier"].append({"system": RESIDENT_ID_SYSTEM, "value": resident_id})
    return doc


def test_thresholds_link_review_separate() -> None:
    a = extract(patient("王晓东", "1990-01-02"))
    same = score(a, extract(patient("王小东", "1990-01-02")), RULES)
    assert decide(same, RULES) == ("link", "probabilistic")
    maybe = score(a, extract(patient("王晓东", "1990-01-09", phone="13800009999", village="西村村")), RULES)
    assert RULES.thresholds.lower <= maybe.score < RULES.thresholds.upper
    assert decide(maybe, RULES) == ("review", "probabilistic")
    other = score(a, extract(patient("李强", "1950-06-06", phone="13800005555")), RULES)
    assert decide(other, RULES) == ("separate", "probabilistic")


def test_same_valid_resident_id_links_and_conflicting_never_auto_links() -> None:
    r1, r2 = rid("44180219900102123"), rid("44180219900102125")
    a = extract(patient("王晓东", "1990-01-02", resident_id=r1))
    linked = score(a, extract(patient("李强", "1950-06-06", phone=None, resident_id=r1.lower())), RULES)
    assert decide(linked, RULES) == ("link", "resident_id")
    twin = score(a, extract(patient("王晓东", "1990-01-02", resident_id=r2)), RULES)
    assert twin.score >= RULES.thresholds.upper
    assert decide(twin, RULES) == ("review", "resident_id_conflict")
    invalid = extract(patient("王晓东", "1990-01-02", resident_id=r2[:-1] + ("1" if r2[-1] != "1" else "2")))
    assert invalid.resident_ids == () and not score(a, invalid, RULES).resident_id_conflict


def ingest(store: MemoryStore, svc: EmpiService, pid: str, doc: dict[str, Any]) -> None:
    with store.unit_of_work() as uow:
        stored, _ = uow.resources.update("Patient", pid, {**doc, "id": pid})
        svc.on_source_patient(uow.resources, stored)
        uow.commit()


def refer(store: MemoryStore, pid: str) -> str:
    with store.unit_of_work() as uow:
        targets = link_targets(uow.resources.read("Patient", pid).as_dict(), "refer")
    assert len(targets) == 1
    return targets[0]


def test_wrong_link_is_undone_without_losing_anything() -> None:
    store, svc = MemoryStore(), EmpiService()
    ingest(store, svc, "a", patient("王晓东", "1990-01-02", mrn="A1"))
    ingest(store, svc, "b", patient("王小东", "1990-01-02", mrn="B1"))  # in truth another person
    golden = refer(store, "a")
    assert refer(store, "b") == golden
    with store.unit_of_work() as uow:
        uow.resources.create(
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "bp"},
                "subject": {"reference": "Patient/b"},
            },
            id="obs-b",
        )
        new = svc.unlink(uow.resources, "b", by="reviewer")
        uow.commit()
    assert new != golden and refer(store, "b") == new and refer(store, "a") == golden
    with store.unit_of_work() as uow:
        repo = uow.resources
        old_doc, new_doc = repo.read("Patient", golden).as_dict(), repo.read("Patient", new).as_dict()
        assert link_targets(old_doc, "seealso") == ["a"] and link_targets(new_doc, "seealso") == ["b"]
        assert is_golden(new_doc)
        assert repo.read("Observation", "obs-b").as_dict()["subject"]["reference"] == "Patient/b"
        assert len(repo.history("Patient", "b").entries) >= 2  # history kept
        history = svc.index(repo).links(source_id="b")
        assert [link.undone_by for link in history] == ["reviewer", None]
        assert history[0].golden_id == golden and history[0].rule == "probabilistic"


def test_review_queue_then_manual_link() -> None:
    store, svc = MemoryStore(), EmpiService()
    ingest(store, svc, "a", patient("王晓东", "1990-01-02", mrn="A1"))
    ingest(store, svc, "b", patient("王晓东", "1990-01-09", phone="13800009999", village="西村村", mrn="B1"))
    assert refer(store, "a") != refer(store, "b")
    with store.unit_of_work() as uow:
        items = svc.index(uow.resources).reviews()
        assert [(i.source_id, i.golden_id) for i in items] == [("b", refer(store, "a"))]
        old_b = refer(store, "b")
        svc.decide_review(uow.resources, items[0].id, "link", by="reviewer")
        uow.commit()
    assert refer(store, "b") == refer(store, "a")
    with store.unit_of_work() as uow:
        retired = uow.resources.read("Patient", old_b).as_dict()
        assert retired["active"] is False and link_targets(retired, "replaced-by") == [refer(store, "a")]
        assert svc.index(uow.resources).reviews() == []


def test_rollback_discards_empi_writes() -> None:
    store, svc = MemoryStore(), EmpiService()
    with store.unit_of_work() as uow:
        stored, _ = uow.resources.update("Patient", "a", {**patient("王晓东", "1990-01-02"), "id": "a"})
        svc.on_source_patient(uow.resources, stored)
    with store.unit_of_work() as uow:
        assert svc.index(uow.resources).get_record("a") is None
        assert svc.index(uow.resources).links() == []


def test_match_bundle_grades() -> None:
    store, svc = MemoryStore(), EmpiService()
    r1 = rid("44180219900102123")
    ingest(store, svc, "a", patient("王晓东", "1990-01-02", resident_id=r1))
    with store.unit_of_work() as uow:
        certain = match(
            svc, uow.resources, patient("李强", "1990-01-02", phone=None, resident_id=r1), only_certain=True
        )
        assert [g for _, _, g in certain] == ["certain"]
        bundle = match_bundle(match(svc, uow.resources, patient("王小东", "1990-01-02")), "http://x/fhir")
    entry = bundle["entry"][0]
    assert entry["search"]["extension"][0]["valueCode"] == "probable"
    assert 0 < entry["search"]["score"] <= 1 and entry["fullUrl"].startswith("http://x/fhir/Patient/")


def pairwise(store: MemoryStore, truth: dict[str, str]) -> tuple[float, float]:
    golden = {pid: refer(store, pid) for pid in truth}
    tp = fp = fn = 0
    for a, b in itertools.combinations(truth, 2):
        same, linked = truth[a] == truth[b], golden[a] == golden[b]
        tp += same and linked
        fp += linked and not same
        fn += same and not linked
    return tp / max(tp + fp, 1), tp / max(tp + fn, 1)


def test_sample_feed_precision_and_recall() -> None:
    store, svc = MemoryStore(), EmpiService()
    truth: dict[str, str] = {}
    for rec in read_feed():
        pid = f"{rec.facility}-{rec.mrn}".lower()
        truth[pid] = rec.person
        ingest(store, svc, pid, rec.patient)
        if rec.merged_mrn:
            with store.unit_of_work() as uow:
                repo = uow.resources
                svc.on_merge(
                    repo,
                    repo.read("Patient", pid),
                    repo.read("Patient", f"{rec.facility}-{rec.merged_mrn}".lower()),
                )
                uow.commit()
    precision, recall = pairwise(store, truth)
    assert len(set(truth.values())) == 60 or len(truth) > 60
    assert precision >= 0.99 and recall >= 0.95, (precision, recall)


@pytest.mark.parametrize("decision", ["maybe"])
def test_unknown_review_decision_refused(decision: str) -> None:
    store, svc = MemoryStore(), EmpiService()
    ingest(store, svc, "a", patient("王晓东", "1990-01-02", mrn="A1"))
    ingest(store, svc, "b", patient("王晓东", "1990-01-09", phone="13800009999", village="西村村", mrn="B1"))
    with store.unit_of_work() as uow:
        item = svc.index(uow.resources).reviews()[0]
        with pytest.raises(Exception, match="unknown review decision"):
            svc.decide_review(uow.resources, item.id, decision, by="x")


def test_everything_pages_through_the_whole_resident_record() -> None:
    from ehr_store.empi import everything

    store, svc = MemoryStore(), EmpiService()
    ingest(store, svc, "a", patient("王晓东", "1990-01-02", mrn="A1"))
    ingest(store, svc, "b", patient("王小东", "1990-01-02", mrn="B1"))
    ingest(store, svc, "z", patient("李强", "1950-06-06", phone="13800005555", mrn="Z1"))
    with store.unit_of_work() as uow:
        repo = uow.resources
        for pid in ("a", "b", "z"):
            for month in (1, 2, 3):
                repo.create(
                    {
                        "resourceType": "Observation",
                        "status": "final",
                        "code": {"text": "bp"},
                        "subject": {"reference": f"Patient/{pid}"},
                        "effectiveDateTime": f"2026-0{month}-01",
                    },
                    id=f"obs-{pid}-{month}",
                )
        golden = svc.golden_of(repo, "a")
        seen: list[str] = []
        offset: int | None = 0
        while offset is not None:
            page = everything(svc, repo, "b", count=4, offset=offset)
            seen += [r.reference for r in page.resources]
            offset = page.next_offset
        assert page.total == 9 and len(seen) == 9 == len(set(seen))
        assert seen[:3] == sorted(["Patient/a", "Patient/b", f"Patient/{golden}"])
        assert "Observation/obs-z-1" not in seen
        dated = everything(svc, repo, golden, types=["Observation"], start="2026-02-01", count=50)
        assert sorted(r.id for r in dated.resources) == ["obs-a-2", "obs-a-3", "obs-b-2", "obs-b-3"]


def test_golden_carries_valid_identifiers_only() -> None:
    from ehr_store.empi.golden import compose_golden

    good = rid("44180219900102123")
    src = patient("王晓东", "1990-01-09", resident_id=good.lower())
    src["id"] = "a"
    src["identifier"].append(
        {
            "system": "urn:qyhie:resident-id:invalid",
            "value": "441802199001021239",
            "type": {"coding": [{"code": "NNCHN"}]},
        }
    )
    golden = compose_golden("g", [src])
    values = [(i["system"], i["value"]) for i in golden["identifier"]]
    assert values == [(RESIDENT_ID_SYSTEM, good)]
    # the facility MRN is kept on the resident record, but not as a searchable identifier
    assigned = [(e["valueIdentifier"]["system"], e["valueIdentifier"]["value"]) for e in golden["extension"]]
    assert assigned == [("urn:qingyuan-hie:mrn:TEST", "1")]
    assert golden["birthDate"] == "1990-01-02"  # from the 身份证号, correcting the typo
    assert golden["link"] == [{"other": {"reference": "Patient/a"}, "type": "seealso"}]


def test_golden_record_keeps_name_extensions_so_it_validates() -> None:
    """A source name with a null `given` entry standing for an extension (`_given`) gives a
    resident record that is itself valid FHIR (the null without `_given` was refused, and the
    source Patient's write with it)."""
    from ehr_store import validate_resource
    from ehr_store.empi.golden import compose_golden

    src = {"resourceType": "Patient", "id": "s1", "name": [{
        "family": "李", "given": ["a", None],
        "_given": [None, {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                         "valueCode": "unknown"}]}]}],
        "telecom": [{"system": "phone", "_value": {"extension": [
            {"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "masked"}]}}]}
    golden = compose_golden("g", [src])
    assert golden["name"] == src["name"] and golden["telecom"] == src["telecom"]
    assert validate_resource(golden) == "Patient"
