"""`indexed_studies`: the ImagingStudy version the DICOMweb gate hands nginx for its cache key
(docs/imaging.md "Caching"), on every store backend (no Orthanc)."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.uid import generate_uid

from ehr_store import Store
from imaging import DICOM_UID_SYSTEM, ClaimsMemo, dicomweb, indexed_studies, study_resource_id, study_subjects


def imaging_study(rid: str, uid: str, patient: str, instances: int = 1) -> dict[str, Any]:
    return {
        "resourceType": "ImagingStudy",
        "id": rid,
        "status": "available",
        "identifier": [{"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{uid}"}],
        "subject": {"reference": f"Patient/{patient}"},
        "numberOfInstances": instances,
    }


def write(store: Store, *docs: dict[str, Any]) -> None:
    with store.unit_of_work(write=True) as uow:
        for doc in docs:
            uow.resources.update(doc["resourceType"], doc["id"], doc)
        uow.commit()


def lookup(store: Store, *uids: str) -> dict[str, Any]:
    with store.unit_of_work() as uow:
        indexed = indexed_studies(uow.resources, uids)
        return {"indexed": indexed, "subjects": study_subjects(uow.resources, uids)}


def test_version_changes_when_the_study_changes(store: Store) -> None:
    uid, other, absent = generate_uid(), generate_uid(), generate_uid()
    rid = study_resource_id(uid)
    write(store, imaging_study(rid, uid, "P1"), imaging_study(study_resource_id(other), other, "P2"))
    first = lookup(store, uid, other, absent)
    assert first["indexed"][uid].version == f"ImagingStudy/{rid}/_history/1"
    assert first["indexed"][uid].subject == "Patient/P1" and first["indexed"][other].subject == "Patient/P2"
    assert absent not in first["indexed"]
    assert first["subjects"] == {uid: "Patient/P1", other: "Patient/P2", absent: None}
    write(store, imaging_study(rid, uid, "P1"))  # indexed again, nothing changed: the same key
    assert lookup(store, uid)["indexed"][uid].version == f"ImagingStudy/{rid}/_history/1"
    write(store, imaging_study(rid, uid, "P1", instances=2))  # the bridge indexing an added instance
    again = lookup(store, uid, other)["indexed"]
    assert again[uid].version == f"ImagingStudy/{rid}/_history/2"
    assert again[other].version == first["indexed"][other].version  # the other study's key stays


def test_a_uid_claimed_twice_has_no_version(store: Store) -> None:
    uid = generate_uid()
    write(store, imaging_study("dup-1", uid, "P1"), imaging_study("dup-2", uid, "P1"))
    found = lookup(store, uid)["indexed"][uid]
    assert found.version is None and found.subject == "Patient/P1"


def test_the_memo_reads_each_version_once_and_answers_the_same(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate's `ClaimsMemo`: the same answers as without it, a new version read anew."""
    uid, other = generate_uid(), generate_uid()
    rid = study_resource_id(uid)
    write(
        store,
        imaging_study(rid, uid, "P1"),
        imaging_study("dup-a", other, "P2"),
        imaging_study("dup-b", other, "P3"),
    )
    memo = ClaimsMemo(size=8)
    parsed: list[bytes] = []
    real_claims = dicomweb._claims

    def counting(content: bytes) -> Any:
        parsed.append(content)
        return real_claims(content)

    monkeypatch.setattr(dicomweb, "_claims", counting)
    for _ in range(2):
        with store.unit_of_work() as uow:
            with_memo = indexed_studies(uow.resources, [uid, other], memo)
            assert len(parsed) == 3  # the three versions, read once: the second round reads none
            assert with_memo == indexed_studies(uow.resources, [uid, other])
            del parsed[3:]  # the comparison's own reads (no memo)
    write(store, imaging_study(rid, uid, "P9", instances=3))  # relinked: version 2
    with store.unit_of_work() as uow:
        found = indexed_studies(uow.resources, [uid], memo)[uid]
    assert found.subject == "Patient/P9" and found.version == f"ImagingStudy/{rid}/_history/2"
    assert len(parsed) == 4  # only the new version was read
