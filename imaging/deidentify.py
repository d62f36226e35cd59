"""De-identified export of a study for teaching or research (DICOM PS3.15 Annex E, Basic
Application Level Confidentiality Profile, Table E.1-1).

`deidentify(ds, uids)` applies the basic profile to a pydicom Dataset in place:
- D (dummy) for the type 1/2 identifying attributes the objects need (PatientName
  `ANONYMOUS`, PatientID from the mapped study, dates kept empty),
- X (remove) for every other attribute the profile lists (names, addresses, phones, other
  IDs, institution, physicians, operators, device serials, comments, dates and times, ...),
- U (UID): every UI attribute that is not a well-known class/transfer-syntax UID is replaced by
  a new UID, consistently through `UidMap` (same input -> same output within an export, so
  series and references stay intact),
- private tags and curves/overlays comments removed; sequences are processed recursively,
- PatientIdentityRemoved `YES`, DeidentificationMethod and its code sequence (113100) set.

`export_study(client, study_uid, out_dir, salt)` writes each de-identified instance.

May import: pydicom, `ehr_store`, `imaging.*`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID

from ehr_store import NotFound
from imaging.charset import read_dataset
from imaging.orthanc import OrthancClient

DUMMY = {
    "PatientName": "ANONYMOUS",
    "PatientID": "",
    "PatientBirthDate": "",
    "PatientSex": "",
    "StudyDate": "",
    "StudyTime": "",
    "AccessionNumber": "",
    "StudyID": "",
    "ReferringPhysicianName": "",
    "ContentDate": "",
    "ContentTime": "",
}
REMOVE = [
    "AcquisitionComments",
    "AcquisitionDate",
    "AcquisitionDateTime",
    "AcquisitionDeviceProcessingDescription",
    "AcquisitionTime",
    "AdditionalPatientHistory",
    "AdmissionID",
    "AdmittingDiagnosesCodeSequence",
    "AdmittingDiagnosesDescription",
    "Allergies",
    "AuthorObserverSequence",
    "BranchOfService",
    "CommentsOnThePerformedProcedureStep",
    "ConsultingPhysicianName",
    "ContentCreatorName",
    "ContrastBolusAgent",
    "CurrentPatientLocation",
    "CustodialOrganizationSequence",
    "DerivationDescription",
    "DetectorID",
    "DeviceSerialNumber",
    "DeviceUID",
    "DistributionAddress",
    "DistributionName",
    "EthnicGroup",
    "FrameComments",
    "GraphicAnnotationSequence",
    "HumanPerformerName",
    "HumanPerformerOrganization",
    "IconImageSequence",
    "IdentifyingComments",
    "ImageComments",
    "InstanceCreationDate",
    "InstanceCreationTime",
    "InstanceCreatorUID",
    "InstitutionAddress",
    "InstitutionCodeSequence",
    "InstitutionName",
    "InstitutionalDepartmentName",
    "IssuerOfAdmissionID",
    "IssuerOfPatientID",
    "IssuerOfPatientIDQualifiersSequence",
    "MedicalAlerts",
    "MedicalRecordLocator",
    "MilitaryRank",
    "ModifiedAttributesSequence",
    "NameOfPhysiciansReadingStudy",
    "NamesOfIntendedRecipientsOfResults",
    "Occupation",
    "OperatorIdentificationSequence",
    "OperatorsName",
    "OriginalAttributesSequence",
    "OrderCallbackPhoneNumber",
    "OrderEnteredBy",
    "OrderEntererLocation",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "PatientAddress",
    "PatientAge",
    "PatientBirthName",
    "PatientBirthTime",
    "PatientComments",
    "PatientInsurancePlanCodeSequence",
    "PatientMotherBirthName",
    "PatientReligiousPreference",
    "PatientSize",
    "PatientState",
    "PatientTelephoneNumbers",
    "PatientTransportArrangements",
    "PatientWeight",
    "PerformedLocation",
    "PerformedProcedureStepDescription",
    "PerformedProcedureStepID",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "PerformingPhysicianIdentificationSequence",
    "PerformingPhysicianName",
    "PersonAddress",
    "PersonName",
    "PersonTelephoneNumbers",
    "PhysiciansOfRecord",
    "PhysiciansOfRecordIdentificationSequence",
    "PhysiciansReadingStudyIdentificationSequence",
    "PregnancyStatus",
    "ReferencedPatientAliasSequence",
    "ReferencedPatientSequence",
    "ReferringPhysicianAddress",
    "ReferringPhysicianIdentificationSequence",
    "ReferringPhysicianTelephoneNumbers",
    "RegionOfResidence",
    "RequestAttributesSequence",
    "RequestedProcedureDescription",
    "RequestedProcedureID",
    "RequestingPhysician",
    "RequestingService",
    "ResponsibleOrganization",
    "ResponsiblePerson",
    "ScheduledPerformingPhysicianName",
    "ScheduledProcedureStepDescription",
    "SeriesDate",
    "SeriesTime",
    "SmokingStatus",
    "SpecialNeeds",
    "StationName",
    "StudyComments",
    "StudyDescription",
    "SeriesDescription",
    "TimezoneOffsetFromUTC",
    "VerifyingObserverName",
    "VerifyingObserverSequence",
    "VisitComments",
    "ProtocolName",
    "PerformingPhysicianName",
    "ReasonForStudy",
    "RequestedContrastAgent",
    "ReasonForTheRequestedProcedure",
    "AccessionNumber",
    "Manufacturer",
]
KEEP_UIDS = {
    "SOPClassUID",
    "TransferSyntaxUID",
    "MediaStorageSOPClassUID",
    "ReferencedSOPClassUID",
    "ImplementationClassUID",
    "CodingSchemeUID",
    "ContextGroupExtensionCreatorUID",
}


class UidMap:
    """Consistent replacement UIDs: `uid -> 2.25.<hash(salt, uid)>` (PS3.5 §B.2), the same for
    the same input and salt, unrelated to the original without the salt."""

    def __init__(self, salt: str) -> None:
        self.salt = salt
        self.mapping: dict[str, str] = {}

    def __call__(self, uid: str) -> str:
        if uid not in self.mapping:
            digest = hashlib.sha256(f"{self.salt}\0{uid}".encode()).digest()[:16]
            self.mapping[uid] = f"2.25.{int.from_bytes(digest, 'big')}"
        return self.mapping[uid]


def _is_class_uid(value: str) -> bool:
    return str(value).startswith("1.2.840.10008.")  # DICOM-defined (classes, syntaxes, frames)


def _walk(ds: Dataset, uids: UidMap) -> None:
    for keyword in REMOVE:
        if keyword in ds:
            delattr(ds, keyword)
    for keyword, value in DUMMY.items():
        if keyword in ds:
            setattr(ds, keyword, value)
    for element in list(ds):
        _element(element, uids)


def _element(element: DataElement, uids: UidMap) -> None:
    if element.VR == "SQ" and isinstance(element.value, Sequence):
        for item in element.value:
            _walk(item, uids)
    elif element.VR == "UI" and element.keyword not in KEEP_UIDS and element.value:
        values = element.value if element.VM > 1 else [element.value]
        mapped = [v if _is_class_uid(v) else uids(str(v)) for v in values]
        element.value = mapped if element.VM > 1 else mapped[0]
    elif element.VR == "PN" and element.keyword != "PatientName":
        element.value = ""


def deidentify(ds: Dataset, uids: UidMap, pseudonym: str | None = None) -> Dataset:
    """Apply the basic profile to `ds` in place (see module docstring) and return it.
    `pseudonym` becomes PatientID (default: derived from the mapped StudyInstanceUID)."""
    ds.remove_private_tags()
    study_uid = str(ds.get("StudyInstanceUID", ""))
    _walk(ds, uids)
    ds.PatientID = pseudonym or "ANON-" + hashlib.sha256(uids(study_uid).encode()).hexdigest()[:12]
    if "SOPInstanceUID" in ds and hasattr(ds, "file_meta"):
        ds.file_meta.MediaStorageSOPInstanceUID = UID(str(ds.SOPInstanceUID))
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "DICOM PS3.15 E.1 Basic Application Level Confidentiality Profile"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "113100", "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    ds.DeidentificationMethodCodeSequence = Sequence([code])
    return ds


async def export_study(client: OrthancClient, study_uid: str, out_dir: Path, salt: str) -> list[Path]:
    """De-identify every instance of a study from Orthanc into `out_dir` (`<n>.dcm`).
    Returns the written paths. Raises: NotFound (no such study), Unavailable."""
    orthanc_id = await client.lookup_study(study_uid)
    if orthanc_id is None:
        raise NotFound(f"Orthanc has no study {study_uid}")
    out_dir.mkdir(parents=True, exist_ok=True)
    uids, written = UidMap(salt), []
    for n, instance in enumerate(await client.study_instances(orthanc_id), start=1):
        ds = deidentify(read_dataset(await client.instance_file(instance)), uids)
        path = out_dir / f"{n:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        written.append(path)
    return written
