"""ImagingStudy.series.instance (FHIR R4B) from Orthanc's instance list: every instance with its
SOP class, so a changed instance set changes the resource (and so its version, the nginx cache
key; docs/imaging.md "Caching") even when the counts stay the same. No Orthanc."""

from __future__ import annotations

from typing import Any

from ehr_store import validate_resource
from imaging import StudySnapshot, imaging_study

STUDY, SERIES_A, SERIES_B = (
    "1.2.826.0.1.3680043.8.498.10",
    "1.2.826.0.1.3680043.8.498.11",
    "1.2.826.0.1.3680043.8.498.12",
)
CT, SC = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.7"


def orthanc_study(instances: list[tuple[str, str, str | None]], classes: dict[str, str]) -> dict[str, Any]:
    """Orthanc's JSON as `OrthancClient.study()` + the bridge's `SopClasses` give it:
    `instances` = (Orthanc series id, SOPInstanceUID, InstanceNumber)."""
    return {
        "ID": "s",
        "MainDicomTags": {"StudyInstanceUID": STUDY, "StudyDate": "20260310"},
        "PatientMainDicomTags": {"PatientID": "A001"},
        "InstanceTags": {"IssuerOfPatientID": "TTWSY"},
        "SeriesDetails": [
            {"ID": sid, "MainDicomTags": {"SeriesInstanceUID": uid, "Modality": "CT", "SeriesNumber": n}}
            for sid, uid, n in (("sa", SERIES_A, "1"), ("sb", SERIES_B, "2"))
        ],
        "InstanceDetails": [
            {
                "ID": f"o-{uid}",
                "ParentSeries": sid,
                "MainDicomTags": {"SOPInstanceUID": uid, **({"InstanceNumber": n} if n else {})},
            }
            for sid, uid, n in instances
        ],
        "SopClasses": classes,
    }


def resource(instances: list[tuple[str, str, str | None]], classes: dict[str, str]) -> dict[str, Any]:
    return imaging_study(StudySnapshot.from_orthanc(orthanc_study(instances, classes)), "Patient/TTWSY-A")


def test_every_instance_is_listed_with_its_sop_class() -> None:
    study = resource(
        [("sa", "1.2.3.2", "2"), ("sa", "1.2.3.1", "1"), ("sb", "1.2.3.9", None)],
        {"1.2.3.1": CT, "1.2.3.2": CT, "1.2.3.9": SC},
    )
    validate_resource(study)
    first, second = study["series"]
    assert first["uid"] == SERIES_A and first["numberOfInstances"] == 2
    assert first["instance"] == [
        {"uid": "1.2.3.1", "sopClass": {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{CT}"}, "number": 1},
        {"uid": "1.2.3.2", "sopClass": {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{CT}"}, "number": 2},
    ]
    assert second["instance"] == [
        {"uid": "1.2.3.9", "sopClass": {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{SC}"}}
    ]
    assert study["numberOfInstances"] == 3


def test_one_instance_replaced_by_another_changes_the_resource() -> None:
    before = resource([("sa", "1.2.3.1", "1"), ("sa", "1.2.3.2", "2")], {"1.2.3.1": CT, "1.2.3.2": CT})
    after = resource([("sa", "1.2.3.1", "1"), ("sa", "1.2.3.3", "2")], {"1.2.3.1": CT, "1.2.3.3": CT})
    assert before["numberOfInstances"] == after["numberOfInstances"] == 2
    assert before["series"][0]["numberOfInstances"] == after["series"][0]["numberOfInstances"]
    assert before != after  # the store gives the changed resource a new version
    same = resource([("sa", "1.2.3.2", "2"), ("sa", "1.2.3.1", "1")], {"1.2.3.1": CT, "1.2.3.2": CT})
    assert same == before  # listed in a stable order: an unchanged re-index keeps the version


def test_an_instance_without_sop_class_is_left_out() -> None:
    """Deleted in Orthanc between the instance list and the SOP class look-up."""
    study = resource([("sa", "1.2.3.1", "1"), ("sa", "1.2.3.2", "2")], {"1.2.3.1": CT})
    assert [i["uid"] for i in study["series"][0]["instance"]] == ["1.2.3.1"]
    assert study["series"][0]["numberOfInstances"] == study["numberOfInstances"] == 1
    assert study["series"][1]["numberOfInstances"] == 0 and "instance" not in study["series"][1]
