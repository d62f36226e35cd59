"""Linking a study to its resident and its order, against the in-memory store."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from ehr_store import MemoryStore, ResourceRepository
from ehr_store.empi import EMPI_TAG_SYSTEM
from ehr_store.resident_id import RESIDENT_ID_SYSTEM, check_character
from imaging import PersonNameGroups, StudySnapshot, find_order, link_subject

RID_1 = "44182119800101002" + check_character("44182119800101002")  # invented
RID_2 = "44180219750505003" + check_character("44180219750505003")


def patient(
    pid: str, fac: str, mrn: str | None, rid: str | None, golden: str | None = None, born: str = "1980-01-01"
) -> dict[str, Any]:
    idents = []
    if mrn:
        idents.append({"system": f"urn:qyhie:facility:{fac}:mrn", "value": mrn})
    if rid:
        idents.append({"system": RESIDENT_ID_SYSTEM, "value": rid})
    doc: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": idents,
        "birthDate": born,
        "meta": {"source": f"urn:qyhie:facility:{fac}"},
    }
    if golden:
        doc["link"] = [{"other": {"reference": f"Patient/{golden}"}, "type": "refer"}]
    return doc


def golden(gid: str, rid: str | None) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": gid,
        "meta": {"tag": [{"system": EMPI_TAG_SYSTEM, "code": "golden"}]},
        "identifier": [{"system": RESIDENT_ID_SYSTEM, "value": rid}] if rid else [],
    }


def order(sid: str, subject: str, fac: str, acsn: str) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "id": sid,
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{subject}"},
        "code": {"text": "DR"},
        "identifier": [
            {
                "type": {"coding": [{"code": "ACSN"}]},
                "system": f"urn:qyhie:facility:{fac}:accession",
                "value": acsn,
            }
        ],
    }


@pytest.fixture
def repo() -> ResourceRepository:
    store = MemoryStore()
    with store.unit_of_work(write=True) as uow:
        for doc in (
            patient("TT-1", "TTWSY", "A001", RID_1, golden="G-1"),
            patient("QY-1", "QYRMYY", "Q9", RID_1, golden="G-1"),
            golden("G-1", RID_1),
            patient("QY-2", "QYRMYY", "B001", RID_2, born="1975-05-05"),
            patient("DUP-1", "DUPFAC", "D1", None),
            patient("DUP-2", "DUPFAC", "D1", None),
            order("ord-1", "QY-1", "TTWSY", "ACC1"),
            order("ord-2", "QY-2", "TTWSY", "ACC2"),
        ):
            uow.resources.update(doc["resourceType"], doc["id"], doc)
        uow.commit()
    return store.unit_of_work().__enter__().resources


def snap(**kw: Any) -> StudySnapshot:
    base = StudySnapshot("o", "1.2.3", "", "", (), PersonNameGroups(), "", "", "", "", "", "")
    return replace(base, **kw)


def test_mrn_and_issuer(repo: ResourceRepository) -> None:
    link = link_subject(repo, snap(patient_id="A001", issuer="TTWSY"), {})
    assert (link.subject, link.method) == ("Patient/TT-1", "mrn")


def test_configured_mrn_system(repo: ResourceRepository) -> None:
    link = link_subject(repo, snap(patient_id="A001", issuer="TT"), {"TT": "urn:qyhie:facility:TTWSY:mrn"})
    assert link.subject == "Patient/TT-1"


def test_resident_id_in_other_patient_ids(repo: ResourceRepository) -> None:
    link = link_subject(repo, snap(patient_id="whatever", other_patient_ids=(RID_1,)), {})
    assert (link.subject, link.method) == ("Patient/G-1", "resident-id")


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({}, "no PatientID"),
        ({"patient_id": "A001"}, "without IssuerOfPatientID"),
        ({"patient_id": "NOPE", "issuer": "TTWSY"}, "no Patient"),
        ({"patient_id": "D1", "issuer": "DUPFAC"}, "2 Patients"),
        ({"patient_id": "A001", "issuer": "TTWSY", "other_patient_ids": (RID_2,)}, "different residents"),
        ({"other_patient_ids": (RID_1, RID_2)}, "more than one"),
        (
            {"patient_id": "A001", "issuer": "TTWSY", "patient_birth_date": "19990101"},
            "BirthDate",
        ),
    ],
)
def test_uncertain_studies_go_to_review(repo: ResourceRepository, kw: dict[str, Any], reason: str) -> None:
    link = link_subject(repo, snap(**kw), {})
    assert link.subject is None and reason in link.reason


def test_invalid_resident_id_is_ignored(repo: ResourceRepository) -> None:
    bad = RID_1[:-1] + ("0" if RID_1[-1] != "0" else "1")
    assert link_subject(repo, snap(other_patient_ids=(bad,)), {}).subject is None


def test_order_of_the_same_resident_only(repo: ResourceRepository) -> None:
    assert find_order(repo, "ACC1", "TTWSY", "Patient/TT-1") == "ServiceRequest/ord-1"  # QY-1: same resident
    assert find_order(repo, "ACC1", "", "Patient/G-1") == "ServiceRequest/ord-1"
    assert find_order(repo, "ACC2", "TTWSY", "Patient/TT-1") is None  # another resident's order
    assert find_order(repo, "ACC404", "TTWSY", "Patient/TT-1") is None
    assert find_order(repo, "", "TTWSY", "Patient/TT-1") is None
