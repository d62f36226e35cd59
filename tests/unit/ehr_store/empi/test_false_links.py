"""Regression tests for two false links found in use (patient safety):

- two different people with a common name and birthday (王伟, 1990-01-01, male) but different
  facility, county, phone and address were auto-linked on name + birth date + sex alone;
- eight different MRNs of ONE facility were joined into one resident, though a facility
  registers a person once (only an ADT^A40 merge or a reviewer may join them).
"""

from __future__ import annotations

from typing import Any

from ehr_store.empi import EmpiService, extract, load_rules
from ehr_store.empi.golden import link_targets
from ehr_store.empi.scoring import decide, score
from ehr_store.memory import MemoryStore

RULES = load_rules()
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def source(
    facility: str,
    mrn: str,
    *,
    name: str = "王伟",
    birth: str = "1990-01-01",
    phone: str | None = "13800001234",
    county: str | None = "441802",
    town: str = "石角镇",
    village: str = "东围村",
) -> dict[str, Any]:
    """A source Patient shaped like the PID mapping (MRN typed MR with the facility's system)."""
    doc: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [
            {
                "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
                "system": f"urn:qyhie:facility:{facility}:mrn",
                "value": mrn,
            }
        ],
        "name": [{"family": name[:1], "given": [name[1:]]}],
        "birthDate": birth,
        "gender": "male",
    }
    if phone:
        doc["telecom"] = [{"system": "phone", "value": phone}]
    if county:
        doc["address"] = [{"line": [village, town], "district": county}]
    return doc


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


def test_common_name_and_birthday_with_phone_and_address_disagreeing_is_not_linked() -> None:
    a = extract(source("QYRMYY", "A1"))
    b = extract(
        source("YDRMYY", "B1", phone="13800005678", county="441881", town="连江口镇", village="西村村")
    )
    cmp = score(a, b, RULES)
    assert cmp.levels["phone"] == "different" and cmp.levels["address"] == "different"
    decision, rule = decide(cmp, RULES)
    assert decision != "link" and rule in ("uncorroborated", "probabilistic")


def test_name_birth_date_and_sex_alone_never_auto_link() -> None:
    a = extract(source("QYRMYY", "A1", phone=None, county=None))
    b = extract(source("YDRMYY", "B1", phone=None, county=None))
    cmp = score(a, b, RULES)
    assert set(cmp.levels) == {"family", "given", "birth_date", "sex"}
    assert cmp.score >= RULES.thresholds.upper  # strong on paper, but nothing independent agrees
    assert decide(cmp, RULES) == ("review", "uncorroborated")


def test_common_names_weigh_less_than_rare_ones() -> None:
    common = score(extract(source("F", "1", name="陈伟")), extract(source("G", "1", name="陈伟")), RULES)
    rare = score(extract(source("F", "1", name="骆晓东")), extract(source("G", "1", name="骆晓东")), RULES)
    assert common.score < rare.score - 3


def test_corroborated_cross_facility_match_still_links() -> None:
    a = extract(source("QYRMYY", "A1"))
    phone_only = score(a, extract(source("YDRMYY", "B1", county=None)), RULES)
    assert decide(phone_only, RULES) == ("link", "probabilistic")
    village_only = score(a, extract(source("YDRMYY", "B1", phone="13800005678")), RULES)
    assert decide(village_only, RULES) == ("link", "probabilistic")


def test_wang_wei_pair_gets_two_residents_and_a_review_item() -> None:
    store, svc = MemoryStore(), EmpiService()
    ingest(store, svc, "qyrmyy-a1", source("QYRMYY", "A1"))
    other = source("YDRMYY", "B1", phone="13800005678", county="441881", town="连江口镇", village="西村村")
    ingest(store, svc, "ydrmyy-b1", other)
    assert refer(store, "qyrmyy-a1") != refer(store, "ydrmyy-b1")


def test_many_mrns_of_one_facility_are_never_joined_automatically() -> None:
    store, svc = MemoryStore(), EmpiService()
    mrns = ["A4", "A7", "J1", "J3", "K2", "K8", "M5", "M9"]
    for mrn in mrns:  # identical demographics, phone and address: only the MRN differs
        ingest(store, svc, f"advt-{mrn.lower()}", source("ADVT", mrn))
    goldens = {refer(store, f"advt-{m.lower()}") for m in mrns}
    assert len(goldens) == len(mrns)
    with store.unit_of_work() as uow:
        reviews = svc.index(uow.resources).reviews()
    assert reviews and {r.rule for r in reviews} == {"mrn_conflict"}
    # another facility's record of the same person still links (to one of them)
    ingest(store, svc, "qyrmyy-x1", source("QYRMYY", "X1"))
    assert refer(store, "qyrmyy-x1") in goldens


def test_a40_merge_still_joins_two_mrns_of_one_facility() -> None:
    store, svc = MemoryStore(), EmpiService()
    ingest(store, svc, "advt-a4", source("ADVT", "A4"))
    ingest(store, svc, "advt-a7", source("ADVT", "A7"))
    assert refer(store, "advt-a4") != refer(store, "advt-a7")
    with store.unit_of_work() as uow:
        (asked,) = svc.index(uow.resources).reviews()  # same person? (two MRNs of one facility)
        assert asked.rule == "mrn_conflict"
        repo = uow.resources
        svc.on_merge(repo, repo.read("Patient", "advt-a4"), repo.read("Patient", "advt-a7"))
        uow.commit()
    with store.unit_of_work() as uow:
        assert svc.golden_of(uow.resources, "advt-a7") == refer(store, "advt-a4")
        # the merge answered the review item: closed, not left open in `hie empi review`
        assert svc.index(uow.resources).reviews() == []
        closed = svc.index(uow.resources).get_review(asked.id)
        assert closed is not None and closed.status == "merged"
