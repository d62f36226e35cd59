"""Character sets, person-name groups and the ImagingStudy mapping (no Orthanc)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydicom.data import get_charset_files
from pydicom.uid import generate_uid

from ehr_store import InvalidInput, validate_resource
from imaging import (
    PersonNameGroups,
    StudySnapshot,
    dicomweb_endpoint,
    human_names,
    imaging_study,
    patient_name,
    read_dataset,
    study_resource_id,
)
from imaging.mapping import started

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from orthanc_server import make_dicom


@pytest.mark.parametrize(("filename", "ideographic"), [("chrX1.dcm", "王^小東"), ("chrX2.dcm", "王^小东")])
def test_pydicom_charset_files(filename: str, ideographic: str) -> None:
    data = Path(get_charset_files(filename)[0]).read_bytes()
    groups = patient_name(read_dataset(data))
    assert groups == PersonNameGroups("Wang^XiaoDong", ideographic, "")
    assert str(groups) == f"Wang^XiaoDong={ideographic}"


@pytest.mark.parametrize("charset", ["ISO_IR 192", "GB18030", "GBK", "\\ISO 2022 IR 58", None])
def test_each_charset_decodes_and_keeps_groups_apart(charset: str | None) -> None:
    data = make_dicom(study_uid=generate_uid(), name="Zhang^San=张^三=", charset=charset)
    if charset and "2022" in charset:
        assert b"\x1b$)A" in data
    groups = patient_name(read_dataset(data))
    assert (groups.alphabetic, groups.ideographic, groups.phonetic) == ("Zhang^San", "张^三", "")
    assert groups.preferred == "张^三"


def test_not_dicom_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        read_dataset(b"MSH|^~\\&|not an image")


def test_human_names_one_per_group() -> None:
    names = human_names(PersonNameGroups.parse("Wang^XiaoDong=王^小東="))
    assert [(n["family"], n["given"], n["text"]) for n in names] == [
        ("王", ["小東"], "王小東"),
        ("Wang", ["XiaoDong"], "XiaoDong Wang"),
    ]
    assert PersonNameGroups.from_json({"Alphabetic": "A^B", "Phonetic": "x"}) == PersonNameGroups(
        "A^B", "", "x"
    )


def test_started() -> None:
    assert started("20260310", "093000.123", "+0800") == "2026-03-10T09:30:00+08:00"
    assert started("20260310", "0930", "") == "2026-03-10T09:30:00+08:00"
    assert started("20260310", "", "-0400") == "2026-03-10"
    assert started("", "093000", "") is None


def orthanc_study(uid: str) -> dict:
    return {
        "ID": "abc",
        "MainDicomTags": {
            "StudyInstanceUID": uid,
            "AccessionNumber": "ACC1",
            "StudyDate": "20260310",
            "StudyTime": "101500",
            "StudyDescription": "胸部正位",
        },
        "PatientMainDicomTags": {
            "PatientID": "A001",
            "PatientName": "Jia^Ce=甲^测=",
            "PatientBirthDate": "19800101",
        },
        "InstanceTags": {
            "IssuerOfPatientID": "TTWSY",
            "OtherPatientIDs": "X\\Y",
            "TimezoneOffsetFromUTC": "+0800",
        },
        "SeriesDetails": [
            {
                "MainDicomTags": {
                    "SeriesInstanceUID": "1.2.3.2",
                    "Modality": "CT",
                    "SeriesNumber": "2",
                    "BodyPartExamined": "HEAD",
                },
                "Instances": ["i1", "i2"],
            },
            {
                "MainDicomTags": {
                    "SeriesInstanceUID": "1.2.3.1",
                    "Modality": "DX",
                    "SeriesNumber": "1",
                    "BodyPartExamined": "ELBOW",
                },
                "Instances": ["i3"],
            },
        ],
    }


def test_imaging_study_is_valid_fhir() -> None:
    uid = "1.2.826.0.1.3680043.8.498.1"
    snap = StudySnapshot.from_orthanc(orthanc_study(uid))
    assert snap.other_patient_ids == ("X", "Y") and snap.issuer == "TTWSY"
    assert snap.patient_name.ideographic == "甲^测"
    study = imaging_study(snap, "Patient/TTWSY-A", "ServiceRequest/ord-1")
    validate_resource(study)
    validate_resource(dicomweb_endpoint("https://hie.example.cn/dicom-web"))
    assert study["id"] == study_resource_id(uid) and len(study["id"]) <= 64
    assert study["identifier"][0] == {"system": "urn:dicom:uid", "value": f"urn:oid:{uid}"}
    assert study["identifier"][1]["value"] == "ACC1"
    assert study["identifier"][1]["system"] == "urn:qyhie:facility:TTWSY:accession"
    assert [s["number"] for s in study["series"]] == [1, 2]
    assert study["series"][0]["bodySite"] == {"system": "urn:qyhie:dicom:body-part-examined", "code": "ELBOW"}
    assert study["series"][1]["bodySite"]["code"] == "69536005"
    assert (study["numberOfSeries"], study["numberOfInstances"]) == (2, 3)
    assert study["started"] == "2026-03-10T10:15:00+08:00"
    assert study["meta"] == {"source": "urn:qyhie:facility:TTWSY"}
    pending = imaging_study(snap, "Patient/TTWSY-A", None, pending_order=True)
    assert "basedOn" not in pending and pending["meta"]["tag"][0]["code"] == "order-pending"


def test_resource_ids_differ_per_study() -> None:
    assert study_resource_id("1.2.3") != study_resource_id("1.2.4")
    assert study_resource_id("1.2.3") == study_resource_id("1.2.3")
