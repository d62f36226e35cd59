"""Withdrawing a study deleted in Orthanc (imaging.reconcile), without servers."""

from __future__ import annotations

from imaging import withdrawn_study
from imaging.reconcile import study_uid_of


def test_withdrawn_study_keeps_the_record_but_not_the_endpoint() -> None:
    doc = {
        "resourceType": "ImagingStudy",
        "id": "dcm-1",
        "meta": {
            "versionId": "3",
            "source": "urn:qyhie:facility:TTWSY",
            "tag": [{"system": "urn:qyhie:imaging", "code": "order-pending"}],
        },
        "identifier": [{"system": "urn:dicom:uid", "value": "urn:oid:1.2.3"}],
        "status": "available",
        "subject": {"reference": "Patient/p1"},
        "endpoint": [{"reference": "Endpoint/dicomweb"}],
        "numberOfInstances": 2,
    }
    out = withdrawn_study(doc)
    assert out["status"] == "entered-in-error" and "endpoint" not in out
    assert out["meta"] == {
        "source": "urn:qyhie:facility:TTWSY",
        "tag": [{"system": "urn:qyhie:imaging", "code": "deleted-in-archive"}],
    }
    assert out["subject"] == doc["subject"] and out["numberOfInstances"] == 2
    assert doc["status"] == "available" and "endpoint" in doc  # the input is not changed
    assert withdrawn_study(out)["meta"]["tag"] == out["meta"]["tag"]  # idempotent
    assert study_uid_of(doc) == "1.2.3" and study_uid_of({"identifier": []}) is None
