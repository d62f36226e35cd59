"""ImagingSettings: the Orthanc connection and the bridge's pace (frozen pydantic section).

Composed into `hie_server.settings.HieSettings` as `imaging` (env `HIE_IMAGING__ORTHANC_URL`,
`HIE_IMAGING__ORTHANC_USERNAME`, `HIE_IMAGING__ORTHANC_PASSWORD`, ...). Nothing reads the
environment here.

May import: pydantic.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class ImagingSettings(BaseModel):
    """Orthanc and the imaging bridge.

    `orthanc_url`: Orthanc's REST root (e.g. `http://127.0.0.1:8042`); unset = imaging off.
    `orthanc_username`/`orthanc_password`: HTTP Basic credentials of the exchange at Orthanc.
    `cursor_name`: key of the bridge's persisted `/changes` position (one per Orthanc).
    `poll_seconds`: pause between polls of `/changes` when the feed is drained.
    `batch_size`: changes fetched per poll (Orthanc caps at 10000).
    `mrn_systems`: IssuerOfPatientID -> Identifier.system of that facility's MRNs, when it
    is not the default `urn:qyhie:facility:<issuer>:mrn` (the HL7 mapping's scheme).
    `timeout_seconds`: per request to Orthanc (connect/read).
    `dicomweb_url`: the exchange's own DICOMweb root, the address of the ImagingStudy Endpoint.
    `reconcile_seconds`: pause between sweeps for studies deleted in Orthanc (0 = never).
    `viewer_url`: the exchange's web viewer entry (IHE Invoke Image Display), the address of the
    ImagingStudy's `Endpoint/dicom-viewer`; empty = no viewer link.
    `viewer_ticket_seconds`: lifetime of a viewer session opened through that entry.
    `gate_secret`: the secret nginx sends to the exchange's `auth_request` endpoint
    (`/_internal/dicomweb-auth`, docs/imaging.md "Two paths"); unset = that endpoint is off.
    """

    model_config = ConfigDict(frozen=True)

    orthanc_url: str | None = None
    orthanc_username: str | None = None
    orthanc_password: SecretStr | None = None
    cursor_name: str = Field(default="orthanc", pattern=r"^[A-Za-z0-9\-.]{1,40}$")
    poll_seconds: float = Field(default=2.0, gt=0)
    batch_size: int = Field(default=200, ge=1, le=10000)
    mrn_systems: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=60.0, gt=0)
    dicomweb_url: str = "http://127.0.0.1:8080/dicom-web"
    reconcile_seconds: float = Field(default=3600.0, ge=0)
    viewer_url: str = "http://127.0.0.1:8080/viewer/IHEInvokeImageDisplay"
    viewer_ticket_seconds: float = Field(default=900.0, gt=0)
    gate_secret: SecretStr | None = None

    @property
    def enabled(self) -> bool:
        """True when an Orthanc is configured."""
        return bool(self.orthanc_url)
