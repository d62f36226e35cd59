"""A real Orthanc for the imaging tests (fixture helper, no pytest import).

Starts Debian's `/usr/sbin/Orthanc` (packages `orthanc` and `orthanc-dicomweb`, installed by
`.ci/orthanc.sh`) with a throwaway configuration: HTTP and DICOM ports chosen free on this
machine, storage and index in a temporary directory, HTTP Basic authentication on with one
generated user, `RemoteAccessAllowed: false` (Orthanc 1.10 cannot bind to loopback only, so
it answers only loopback clients), `"DefaultEncoding": "Chinese"` (files without
SpecificCharacterSet decode as GB18030), the DICOMweb plugin loaded, the Web Viewer plugin
(Debian `orthanc-webviewer`) when installed (`viewer` says whether it is), and `StableAge` 1 s
so `StableStudy` changes come quickly.

`OrthancServer.restart()` stops the process, waits for its pid to exit (Orthanc keeps its
index locked until then) and starts it again on the same storage.

`HIE_ORTHANC_BINARY` overrides the binary; `HIE_ORTHANC_PLUGIN` the DICOMweb plugin path;
`HIE_ORTHANC_VIEWER_PLUGIN` the Web Viewer plugin path.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BINARY = os.environ.get("HIE_ORTHANC_BINARY", "/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = os.environ.get("HIE_ORTHANC_PLUGIN", "/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
VIEWER_PLUGIN = os.environ.get(
    "HIE_ORTHANC_VIEWER_PLUGIN", "/usr/share/orthanc/plugins/libOrthancWebViewer.so"
)
USER = "hie-bridge"


class OrthancUnavailable(RuntimeError):
    """Orthanc or its DICOMweb plugin is not installed, or it did not start."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OrthancServer:
    """A running Orthanc we started: `url`, `username`/`password`, `dicom_port`, `aet`."""

    home: Path
    http_port: int
    dicom_port: int
    username: str = USER
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    aet: str = "HIETEST"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def viewer(self) -> bool:
        """Whether the Web Viewer plugin is installed (and so loaded)."""
        return Path(VIEWER_PLUGIN).exists()

    @property
    def log_path(self) -> Path:
        return self.home / "orthanc.log"

    def config(self) -> dict[str, object]:
        storage = str(self.home / "storage")
        return {
            "Name": "hie-test",
            "StorageDirectory": storage,
            "IndexDirectory": storage,
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "UnknownSopClassAccepted": True,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {self.username: self.password},
            "DefaultEncoding": "Chinese",
            "Plugins": [DICOMWEB_PLUGIN, *([VIEWER_PLUGIN] if self.viewer else [])],
            "WebViewer": {"CachePath": str(self.home / "webviewer-cache"), "Threads": 1},
            "StableAge": 1,
            "OrthancExplorerEnabled": False,
            "WebDavEnabled": False,
            "HttpCompressionEnabled": False,
            "SaveJobs": False,
            "ConcurrentJobs": 1,
            "HttpThreadsCount": 16,
            "DicomWeb": {
                "Enable": True,
                "Root": "/dicom-web/",
                "EnableWado": True,
                "WadoRoot": "/wado",
                "Ssl": False,
                "StudiesMetadata": "Full",
                "SeriesMetadata": "Full",
            },
        }

    def start(self, timeout: float = 30.0) -> None:
        """Start Orthanc and wait until `/system` answers. Raises: OrthancUnavailable."""
        config = self.home / "orthanc.json"
        config.write_text(json.dumps(self.config(), indent=1))
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [BINARY, "--no-jobs", str(config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise OrthancUnavailable(f"Orthanc exited with {self.process.returncode}: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(f"{self.url}/system", auth=(self.username, self.password), timeout=2)
                if r.status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise OrthancUnavailable(f"Orthanc did not answer within {timeout} s: {self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM, then wait for the pid to exit (SIGKILL after 20 s)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def restart(self) -> None:
        """Stop (waiting for the pid to exit) and start again on the same storage."""
        self.stop()
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def start_orthanc() -> OrthancServer:
    """Start a throwaway Orthanc (see module docstring). Raises: OrthancUnavailable."""
    if not Path(BINARY).exists():
        raise OrthancUnavailable(f"{BINARY} not found: install Debian's orthanc package (.ci/orthanc.sh)")
    if not Path(DICOMWEB_PLUGIN).exists():
        raise OrthancUnavailable(f"{DICOMWEB_PLUGIN} not found: install Debian's orthanc-dicomweb package")
    home = Path(tempfile.mkdtemp(prefix="hie-orthanc-"))
    server = OrthancServer(home, _free_port(), _free_port())
    try:
        server.start()
    except OrthancUnavailable:
        shutil.rmtree(home, ignore_errors=True)
        raise
    return server


def remove_orthanc(server: OrthancServer) -> None:
    """Stop the server and remove its storage."""
    server.stop()
    shutil.rmtree(server.home, ignore_errors=True)


# -- small synthetic DICOM files (pydicom) ---------------------------------------------------
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def make_dicom(
    *,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    patient_id: str = "",
    issuer: str = "",
    other_ids: tuple[str, ...] = (),
    name: str = "",
    charset: str | None = "ISO_IR 192",
    accession: str = "",
    modality: str = "DX",
    body_part: str = "CHEST",
    study_date: str = "20260310",
    birth_date: str = "",
    size: int = 32,
    extra: dict[str, object] | None = None,
) -> bytes:
    """One Secondary Capture instance (`size`x`size` 8-bit pixels) as a Part 10 file.
    `charset=None` writes the text as GB18030 bytes with no SpecificCharacterSet element."""
    from io import BytesIO

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop_uid = sop_uid or generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    if charset is not None:
        ds.SpecificCharacterSet = charset.split("\\") if "\\" in charset else charset
    ds.SOPClassUID, ds.SOPInstanceUID = SECONDARY_CAPTURE, sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid or generate_uid()
    ds.PatientID, ds.AccessionNumber = patient_id, accession
    if issuer:
        ds.IssuerOfPatientID = issuer
    if other_ids:
        ds.OtherPatientIDs = list(other_ids) if len(other_ids) > 1 else other_ids[0]
    if charset is None:
        ds.PatientName = name.encode("gb18030")
    elif "ISO 2022 IR 58" in charset:  # GB 2312 in G1, each ideographic run after ESC $ ) A
        ds.PatientName = (
            re.sub("([\u3000-\u9fff]+)", lambda m: "\x1b$)A" + m.group(1), name)
            .encode("gb2312")
            .replace(b"\x1b$)A".decode().encode("gb2312"), b"\x1b$)A")
        )
    else:
        ds.PatientName = name
    ds.PatientBirthDate, ds.PatientSex = birth_date, "F"
    ds.StudyDate, ds.StudyTime, ds.TimezoneOffsetFromUTC = study_date, "093000", "+0800"
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 1, 1
    ds.Modality, ds.BodyPartExamined, ds.ConversionType = modality, body_part, "WSD"
    ds.ReferringPhysicianName = ""
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = bytes((x * 7 + y * 3) % 256 for y in range(size) for x in range(size))
    for key, value in (extra or {}).items():
        setattr(ds, key, value)
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
