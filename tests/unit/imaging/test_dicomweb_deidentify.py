"""DICOMweb request classification, QIDO query splitting, STOW-RS bodies, de-identification."""

from __future__ import annotations

import sys
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from ehr_store import InvalidInput
from imaging import UidMap, deidentify, parse_target, qido_query, read_dataset, stow_parts

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from orthanc_server import make_dicom


@pytest.mark.parametrize(
    ("method", "path", "kind", "study", "series", "instance", "level"),
    [
        ("GET", "/studies", "qido", None, None, None, "Study"),
        ("GET", "/studies/1.2/series", "qido", "1.2", None, None, "Series"),
        ("GET", "/studies/1.2/series/3.4/instances", "qido", "1.2", "3.4", None, "Instance"),
        ("GET", "/instances", "qido", None, None, None, "Instance"),
        ("GET", "/studies/1.2", "wado-rs", "1.2", None, None, "Study"),
        ("GET", "/studies/1.2/metadata", "wado-rs", "1.2", None, None, "Study"),
        ("GET", "/studies/1.2/series/3.4/instances/5.6/frames/1", "wado-rs", "1.2", "3.4", "5.6", "Study"),
        ("GET", "/studies/1.2/series/3.4/rendered", "wado-rs", "1.2", "3.4", None, "Study"),
        ("POST", "/studies", "stow", None, None, None, "Study"),
    ],
)
def test_parse_target(method, path, kind, study, series, instance, level) -> None:
    t = parse_target(method, path)
    assert (t.kind, t.study, t.series, t.instance, t.level) == (kind, study, series, instance, level)


def test_wado_uri_and_bad_paths() -> None:
    t = parse_target("GET", "/wado", [("requestType", "WADO"), ("studyUID", "1.2"), ("objectUID", "5.6")])
    assert (t.kind, t.study, t.instance) == ("wado-uri", "1.2", "5.6")
    for method, path in (
        ("GET", "/wado"),
        ("GET", "/studies/x!"),
        ("POST", "/studies/1.2/series"),
        ("GET", "/"),
    ):
        with pytest.raises(InvalidInput):
            parse_target(method, path, [])


def test_qido_query_split() -> None:
    q = qido_query(
        [
            ("PatientName", "*张^三*"),
            ("PatientID", "A001"),
            ("includefield", "00100010,00080050"),
            ("00100030", "1980*"),
            ("limit", "5000"),
            ("offset", "10"),
        ]
    )
    assert q.find == {"PatientName": "*张^三*", "PatientBirthDate": "1980*"}
    assert q.on_url == [
        ("PatientID", "A001"),
        ("includefield", "00100010"),
        ("includefield", "00080050"),
        ("offset", "10"),
    ]
    assert q.limit == 1000
    with pytest.raises(InvalidInput):
        qido_query([("limit", "-1")])


def test_stow_parts() -> None:
    one, two = make_dicom(study_uid="1.2.3"), make_dicom(study_uid="1.2.3")
    body = (
        b"--b1\r\nContent-Type: application/dicom\r\n\r\n"
        + one
        + b"\r\n--b1\r\nContent-Type: application/dicom\r\n\r\n"
        + two
        + b"\r\n--b1--\r\n"
    )
    assert stow_parts(body, 'multipart/related; type="application/dicom"; boundary=b1') == [one, two]
    with pytest.raises(InvalidInput):
        stow_parts(body, "application/dicom")
    with pytest.raises(InvalidInput):
        stow_parts(b"--b1--", "multipart/related; boundary=b1")


def test_deidentify_basic_profile() -> None:
    study, series = generate_uid(), generate_uid()
    data = make_dicom(
        study_uid=study,
        series_uid=series,
        patient_id="A001",
        issuer="TTWSY",
        name="Jia^Ce=甲^测=",
        other_ids=("X1",),
        accession="ACC7",
        birth_date="19800101",
        extra={"InstitutionName": "阳山县人民医院", "OperatorsName": "Lin^Op"},
    )
    ds = read_dataset(data)
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", ds.SOPInstanceUID
    ref.PerformingPhysicianName = "Wu^Doc"
    ds.ReferencedImageSequence = Sequence([ref])
    ds.add_new(0x00091010, "LO", "private secret")
    original_sop = str(ds.SOPInstanceUID)
    uids = UidMap("salt-1")
    out = deidentify(ds, uids)
    buffer = BytesIO()
    out.save_as(buffer, enforce_file_format=True)
    raw = buffer.getvalue()
    for secret in (
        "A001",
        "TTWSY",
        "X1",
        "ACC7",
        "19800101",
        "Lin",
        "Wu^Doc",
        "private secret",
        study,
        series,
        original_sop,
    ):
        assert secret.encode() not in raw, secret
    for text in ("甲", "阳山"):
        assert text.encode() not in raw and text.encode("gb18030") not in raw
    back = pydicom.dcmread(BytesIO(raw))
    assert back.StudyInstanceUID == uids(study) and back.SeriesInstanceUID == uids(series)
    assert back.ReferencedImageSequence[0].ReferencedSOPInstanceUID == back.SOPInstanceUID
    assert back.ReferencedImageSequence[0].ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7" and back.PatientIdentityRemoved == "YES"
    assert UidMap("salt-1")(study) == uids(study) != UidMap("salt-2")(study)
