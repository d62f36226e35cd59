"""DICOM character sets and person names.

Clinics send ISO_IR 192 (UTF-8), GB18030, GBK, ISO 2022 IR 58 (GB 2312 with escape
sequences) or nothing at all. `read_dataset` decodes a file with pydicom; a file without
SpecificCharacterSet is read as GB18030 (the region's de-facto default, matching Orthanc's
`"DefaultEncoding": "Chinese"`), and escape sequences are gone from the decoded text.

A PersonName has up to three component groups, `alphabetic=ideographic=phonetic` (DICOM PS3.5
§6.2.1.2); `PersonNameGroups` keeps them apart (`Wang^XiaoDong=王^小東=`) and
`human_names` turns them into FHIR HumanNames (one per non-empty group).

May import: pydicom, the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from typing import Any

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from ehr_store import InvalidInput

DEFAULT_CHARSET = "GB18030"
TEXT_VRS = frozenset({"PN", "LO", "SH", "LT", "ST", "UT", "UC"})
GROUP_EXTENSION = "urn:qyhie:fhir:extension:dicom-pn-group"


@dataclass(frozen=True)
class PersonNameGroups:
    """The three component groups of a DICOM PN value, each `family^given^middle^prefix^suffix`."""

    alphabetic: str = ""
    ideographic: str = ""
    phonetic: str = ""

    @classmethod
    def parse(cls, value: str | None) -> PersonNameGroups:
        """Split a decoded PN string on `=` (PS3.5 §6.2.1.2)."""
        parts = [*(value or "").split("="), "", ""]
        return cls(parts[0].strip(), parts[1].strip(), parts[2].strip())

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> PersonNameGroups:
        """From DICOM JSON (PS3.18 §F.2.2): `{"Alphabetic": ..., "Ideographic": ..., "Phonetic": ...}`."""
        value = value or {}
        return cls(
            str(value.get("Alphabetic", "")),
            str(value.get("Ideographic", "")),
            str(value.get("Phonetic", "")),
        )

    def __str__(self) -> str:
        return "=".join([self.alphabetic, self.ideographic, self.phonetic]).rstrip("=")

    @property
    def preferred(self) -> str:
        """The ideographic group (Chinese characters) when present, else the alphabetic one."""
        return self.ideographic or self.alphabetic


def _human_name(group: str, kind: str) -> dict[str, Any] | None:
    components = [*group.split("^"), "", "", "", ""]
    family, given, middle = components[0].strip(), components[1].strip(), components[2].strip()
    if not (family or given):
        return None
    name: dict[str, Any] = {"extension": [{"url": GROUP_EXTENSION, "valueCode": kind}]}
    if family:
        name["family"] = family
    givens = [g for g in (given, middle) if g]
    if givens:
        name["given"] = givens
    name["text"] = f"{family}{''.join(givens)}" if kind != "alphabetic" else " ".join([*givens, family])
    return name


def human_names(groups: PersonNameGroups) -> list[dict[str, Any]]:
    """FHIR HumanNames, one per non-empty group, tagged with the group (`alphabetic`, ...)."""
    out = []
    for kind, group in (
        ("ideographic", groups.ideographic),
        ("alphabetic", groups.alphabetic),
        ("phonetic", groups.phonetic),
    ):
        name = _human_name(group, kind)
        if name is not None:
            out.append(name)
    return out


def read_dataset(
    data: bytes, *, stop_before_pixels: bool = False, default_charset: str = DEFAULT_CHARSET
) -> Dataset:
    """Parse one DICOM Part 10 file (or a bare dataset) and decode its text with its
    SpecificCharacterSet, or `default_charset` when it has none.
    Raises: InvalidInput (not DICOM)."""
    try:
        ds = pydicom.dcmread(BytesIO(data), stop_before_pixels=stop_before_pixels, force=False)
    except (InvalidDicomError, EOFError, ValueError, TypeError, KeyError) as exc:
        raise InvalidInput(f"not a DICOM file: {exc}") from exc
    if "SpecificCharacterSet" not in ds or not ds.SpecificCharacterSet:
        ds.SpecificCharacterSet = default_charset
    charsets = ds.SpecificCharacterSet
    charsets = [charsets] if isinstance(charsets, str) else list(charsets)
    if "ISO 2022 IR 58" in charsets:
        _strip_iso2022(ds)
    ds.decode()
    return ds


def _strip_iso2022(ds: Dataset) -> None:
    """ISO 2022 IR 58: drop the escape sequences (ESC $ ) A into GB 2312, ESC ( B back to ASCII)
    and read the remaining EUC bytes as GB18030, a superset of both (PS3.5 §6.1.2.5.3, Annex K).
    pydicom leaves the escapes in when Python's `iso_ir_58` codec (plain GB 2312) does not."""
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        if isinstance(raw, RawDataElement):
            vr = raw.VR or dictionary_VR(tag)
            if vr in TEXT_VRS and raw.value and b"\x1b" in raw.value:
                value = raw.value.replace(b"\x1b$)A", b"").replace(b"\x1b(B", b"")
                ds[tag] = raw._replace(value=value, length=len(value))
    ds.SpecificCharacterSet = "GB18030"


def patient_name(ds: Dataset) -> PersonNameGroups:
    """The PatientName (0010,0010) of a decoded dataset, groups kept apart."""
    value = ds.get("PatientName")
    if value is None:
        return PersonNameGroups()
    return PersonNameGroups(
        str(value.alphabetic or ""), str(value.ideographic or ""), str(value.phonetic or "")
    )
