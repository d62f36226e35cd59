"""imaging: DICOM studies from clinics into the resident record, and guarded viewing.

Images live in Orthanc; this package follows Orthanc's `/changes` feed and keeps one FHIR
ImagingStudy per study, linked to the resident and to the order (`ImagingBridge`), uploads
files (`upload_files`), de-identifies studies for export (`deidentify`, `export_study`), and
knows what a DICOMweb request asks for and whose study it is (`parse_target`,
`study_subjects`, `qido_query`, `stow_parts`) for the exchange's proxy in
`hie_server.operations.imaging`. `OrthancClient` is the only way to Orthanc (pyorthanc is
confined to `imaging.orthanc`).

Public API (import only from here): `ImagingSettings`, `OrthancClient`, `Change`,
`ChangesPage`, `ImagingBridge`, `BridgeReport`, `StudySnapshot`, `imaging_study`,
`study_resource_id`, `dicomweb_endpoint`, `link_subject`, `find_order`, `SubjectLink`,
`PersonNameGroups`, `human_names`, `read_dataset`, `patient_name`, `deidentify`, `UidMap`,
`export_study`, `dicom_files`, `upload_files`, `UploadReport`, `Target`, `parse_target`,
`study_subjects`, `indexed_studies`, `IndexedStudy`, `ClaimsMemo`, `qido_query`, `QidoQuery`, `stow_parts`,
`SAFE_QUERY_VALUE`, `Upstream`, `reconcile`, `ReconcileReport`, `withdrawn_study`, `viewer_endpoint`.

May import: `ehr_store` and `terminology` public APIs, pydicom, pyorthanc (only in
`imaging.orthanc`), httpx.
"""

from imaging.bridge import BridgeReport, ImagingBridge, review_task_id
from imaging.charset import PersonNameGroups, human_names, patient_name, read_dataset
from imaging.deidentify import UidMap, deidentify, export_study
from imaging.dicomweb import (
    ClaimsMemo,
    IndexedStudy,
    QidoQuery,
    Target,
    indexed_studies,
    parse_target,
    qido_query,
    stow_parts,
    study_subjects,
)
from imaging.linking import SubjectLink, find_order, link_subject
from imaging.mapping import (
    DICOM_UID_SYSTEM,
    StudySnapshot,
    dicomweb_endpoint,
    imaging_study,
    study_identifier,
    study_resource_id,
    viewer_endpoint,
)
from imaging.orthanc import SAFE_QUERY_VALUE, Change, ChangesPage, OrthancClient, Upstream
from imaging.reconcile import ReconcileReport, reconcile, withdrawn_study
from imaging.settings import ImagingSettings
from imaging.upload import UploadReport, dicom_files, upload_files

__all__ = [
    "DICOM_UID_SYSTEM",
    "SAFE_QUERY_VALUE",
    "BridgeReport",
    "Change",
    "ChangesPage",
    "ClaimsMemo",
    "ImagingBridge",
    "ImagingSettings",
    "IndexedStudy",
    "OrthancClient",
    "PersonNameGroups",
    "QidoQuery",
    "ReconcileReport",
    "StudySnapshot",
    "SubjectLink",
    "Target",
    "UidMap",
    "UploadReport",
    "Upstream",
    "deidentify",
    "dicom_files",
    "dicomweb_endpoint",
    "export_study",
    "find_order",
    "human_names",
    "imaging_study",
    "indexed_studies",
    "link_subject",
    "parse_target",
    "patient_name",
    "qido_query",
    "read_dataset",
    "reconcile",
    "review_task_id",
    "stow_parts",
    "study_identifier",
    "study_resource_id",
    "study_subjects",
    "upload_files",
    "viewer_endpoint",
    "withdrawn_study",
]
