"""DICOMweb requests as the exchange sees them: what a path asks for, whose study it is, how a
QIDO-RS query reaches Orthanc 1.10 intact, and what a STOW-RS body contains. No HTTP server.

- `parse_target(path, query)`: QIDO-RS / WADO-RS / WADO-URI / STOW-RS target with its UIDs
  (DICOM PS3.18 §10.4 WADO-RS, §10.6 QIDO-RS, §10.5 STOW-RS, §9 WADO-URI).
- `study_subjects(repo, uids)`: `{StudyInstanceUID: "Patient/<id>" or None}` from ImagingStudy;
  `indexed_studies(repo, uids, memo)` the same with the ImagingStudy's version (`IndexedStudy`),
  which the nginx fast path puts in its cache key (`ClaimsMemo`: what each version says, read
  once).
- `qido_query(pairs)`: splits the query into what Orthanc can take on its URL (ASCII-safe
  values, `includefield` repeated) and the filters that must go through `POST /tools/find`
  (any value needing percent-encoding: Chinese names, `*`, `^`, `,`).
- `stow_parts(body, content_type)`: the DICOM instances of a `multipart/related` body.

May import: pydicom (data dictionary), orjson, `ehr_store`, `imaging.*`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import orjson
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset

from ehr_store import InvalidInput, ResourceRepository, StoredResource
from imaging.charset import patient_name
from imaging.mapping import DICOM_UID_SYSTEM, StudySnapshot
from imaging.orthanc import SAFE_QUERY_VALUE

UID = r"[0-9.]{1,64}"
_WADO_RS = re.compile(
    rf"^/studies/(?P<study>{UID})(?:/series/(?P<series>{UID})(?:/instances/(?P<instance>{UID}))?)?(?P<rest>/.*)?$"
)
_QIDO = re.compile(
    rf"^(?:/studies(?:/(?P<study>{UID})/series(?:/(?P<series>{UID})/instances)?)?|/series|/instances)$"
)
QIDO_CONTROL = frozenset({"limit", "offset", "fuzzymatching", "includefield"})
QIDO_LEVEL = {"studies": "Study", "series": "Series", "instances": "Instance"}
UID_KEY = {"Study": "StudyInstanceUID", "Series": "SeriesInstanceUID", "Instance": "SOPInstanceUID"}


@dataclass(frozen=True)
class Target:
    """`kind`: qido, wado-rs, wado-uri or stow; `level`: Study/Series/Instance for QIDO."""

    kind: str
    study: str | None = None
    series: str | None = None
    instance: str | None = None
    level: str = "Study"


def parse_target(method: str, path: str, query: Sequence[tuple[str, str]] = ()) -> Target:
    """Classify a request below the DICOMweb root (`path` like `/studies/1.2/metadata`) or the
    WADO-URI root (`path` == `/wado`). Raises: InvalidInput (not a DICOMweb resource)."""
    if path == "/wado":
        q = dict(query)
        if q.get("requestType") != "WADO" or not q.get("studyUID"):
            raise InvalidInput("WADO-URI needs requestType=WADO and studyUID (DICOM PS3.18 §9)")
        return Target("wado-uri", q["studyUID"], q.get("seriesUID"), q.get("objectUID"))
    if method == "POST":
        m = re.match(rf"^/studies(?:/(?P<study>{UID}))?$", path)
        if not m:
            raise InvalidInput("STOW-RS is POST /dicom-web/studies[/{StudyInstanceUID}]")
        return Target("stow", m["study"])
    qido = _QIDO.match(path)
    if qido:
        level = QIDO_LEVEL[path.rstrip("/").rsplit("/", 1)[-1]]
        return Target("qido", qido["study"], qido["series"], level=level)
    wado = _WADO_RS.match(path)
    if wado:
        return Target("wado-rs", wado["study"], wado["series"], wado["instance"])
    raise InvalidInput(f"not a DICOMweb resource: {path}")


@dataclass(frozen=True)
class IndexedStudy:
    """A study's ImagingStudy as the access decision reads it: `subject` ("Patient/<id>", None
    without one) and `version` ("ImagingStudy/<id>/_history/<versionId>": changes whenever the
    bridge rewrites the study, e.g. after series/instances were added or removed; None when
    several ImagingStudies claim the UID, so no cached answer can be tied to one of them)."""

    subject: str | None
    version: str | None


Claims = tuple[tuple[str, ...], str | None]
"""What the access decision needs of one ImagingStudy version: the StudyInstanceUIDs its
identifiers claim (in order) and its subject reference."""


def _claims(content: bytes) -> Claims:
    doc = orjson.loads(content)  # no decimals needed here; 5x the standard library's speed
    uids = tuple(
        str(ident.get("value", "")).removeprefix("urn:oid:")
        for ident in doc.get("identifier", [])
        if ident.get("system") == DICOM_UID_SYSTEM
    )
    return uids, (doc.get("subject") or {}).get("reference")


class ClaimsMemo:
    """`Claims` per ImagingStudy version of one store, so a decision on a study whose version was
    read before parses nothing (an ImagingStudy lists every instance: 18 KB for 120 instances,
    ~300 KB for 2,000). Exact: a version's content never changes (a change is a new version),
    so the memo never answers for content it has not read. Bounded (`size` versions, then
    emptied); thread-safe (single dict operations)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._memo: dict[tuple[str, int], Claims] = {}

    def claims(self, stored: StoredResource) -> Claims:
        key = (stored.reference, stored.version_id)
        found = self._memo.get(key)
        if found is None:
            found = _claims(stored.content)
            if len(self._memo) >= self.size:
                self._memo.clear()
            self._memo[key] = found
        return found


def indexed_studies(
    repo: ResourceRepository, uids: Iterable[str], memo: ClaimsMemo | None = None
) -> dict[str, IndexedStudy]:
    """`{StudyInstanceUID: IndexedStudy}` for the UIDs that have an ImagingStudy (identifier
    `urn:dicom:uid|urn:oid:<UID>`); UIDs not in the record are absent. One search per 100 UIDs;
    `memo` keeps what each version read says (the DICOMweb gate's)."""
    wanted = set(uids)
    out: dict[str, IndexedStudy] = {}
    ordered = sorted(wanted)
    read = memo.claims if memo is not None else lambda m: _claims(m.content)
    for start in range(0, len(ordered), 100):
        chunk = ordered[start : start + 100]
        token = ",".join(f"{DICOM_UID_SYSTEM}|urn:oid:{u}" for u in chunk)
        for m in repo.search("ImagingStudy", [("identifier", token), ("_count", "200")]).matches:
            claimed, subject = read(m)
            for uid in claimed:
                if uid in wanted:
                    version = f"{m.reference}/_history/{m.version_id}" if uid not in out else None
                    out[uid] = IndexedStudy(subject, version)
    return out


def study_subjects(repo: ResourceRepository, uids: Iterable[str]) -> dict[str, str | None]:
    """`{StudyInstanceUID: subject reference}` from the ImagingStudies (None: not indexed)."""
    wanted = sorted(set(uids))
    found = indexed_studies(repo, wanted)
    return {u: found[u].subject if u in found else None for u in wanted}


def _keyword(key: str) -> str:
    if re.fullmatch(r"[0-9A-Fa-f]{8}", key):
        keyword = keyword_for_tag(int(key, 16))
        if not keyword:
            raise InvalidInput(f"unknown DICOM tag {key} in the query")
        return str(keyword)
    return key


@dataclass
class QidoQuery:
    """`on_url`: pairs safe for Orthanc's URL; `find`: filters for `/tools/find` (keyword -> value)."""

    on_url: list[tuple[str, str]] = field(default_factory=list)
    find: dict[str, str] = field(default_factory=dict)
    limit: int = 100


def qido_query(pairs: Sequence[tuple[str, str]], max_limit: int = 1000) -> QidoQuery:
    """Split a QIDO-RS query (see module docstring). Raises: InvalidInput (bad limit/tag)."""
    out = QidoQuery()
    for key, value in pairs:
        if key == "includefield":
            out.on_url += [("includefield", v.strip()) for v in value.split(",") if v.strip()]
        elif key == "limit":
            if not value.isdigit():
                raise InvalidInput("limit must be a non-negative integer")
            out.limit = min(int(value), max_limit)
        elif key in QIDO_CONTROL or (SAFE_QUERY_VALUE.match(value) and SAFE_QUERY_VALUE.match(key)):
            out.on_url.append((key, value))
        else:
            out.find[_keyword(key)] = value
    for key, value in out.on_url:
        if not SAFE_QUERY_VALUE.match(value) and key != "includefield":
            raise InvalidInput(f"unsupported value for {key}")
    return out


def stow_parts(body: bytes, content_type: str) -> list[bytes]:
    """The parts of a `multipart/related; type="application/dicom"` body (RFC 2387, DICOM
    PS3.18 §10.5). Raises: InvalidInput (not multipart, no boundary, no part)."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.lower().startswith("multipart/related") or not m:
        raise InvalidInput("STOW-RS needs Content-Type multipart/related with a boundary")
    delimiter = b"--" + m.group(1).encode("latin-1")
    parts = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        _head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        parts.append(content[:-2] if content.endswith(b"\r\n") else content)
    if not parts:
        raise InvalidInput("the STOW-RS body has no DICOM part")
    return parts


def snapshot_of_dataset(ds: Dataset) -> StudySnapshot:
    """The identifying part of a StudySnapshot from one decoded instance (for STOW-RS checks)."""
    others = ds.get("OtherPatientIDs") or []
    if isinstance(others, str):
        others = [others]
    return StudySnapshot(
        orthanc_id="",
        study_uid=str(ds.get("StudyInstanceUID", "")),
        patient_id=str(ds.get("PatientID", "") or "").strip(),
        issuer=str(ds.get("IssuerOfPatientID", "") or "").strip(),
        other_patient_ids=tuple(str(v).strip() for v in others if str(v).strip()),
        patient_name=patient_name(ds),
        patient_birth_date=str(ds.get("PatientBirthDate", "") or ""),
        accession=str(ds.get("AccessionNumber", "") or "").strip(),
        description="",
        study_date="",
        study_time="",
        timezone_offset="",
    )
