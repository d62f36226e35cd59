"""Translation of coded elements from feeds to standard codes (used by ingestion).

The HL7 v2 mapping calls, for each coded element (CWE/CE, or a plain code in a table
field such as PID-8 with the label `HL70001`):

    original = {"system": source_system(sender, cwe3, cwe1), "code": cwe1, "display": cwe2}
    codings = [original, *translator.translate_coding(sender, cwe3, cwe1, cwe2)]

`translate_coding` returns the standard codings to add next to the original (never
replacing it, never repeating it): from the sender's ConceptMap, then the regional
default map, then by rule (ICD-10 national clinical / 医保 edition codes roll up to WHO
ICD-10). A local code without a mapping is counted in the translator's `UnmappedLog`.

May import: the standard library, `terminology.canonical`, `terminology.icd10`,
`terminology.index`, `terminology.unmapped`.
"""

from __future__ import annotations

from typing import Any

from terminology import icd10
from terminology.canonical import BASE, ICD10, ICD10_CN, normalize_system
from terminology.index import TerminologyIndex
from terminology.unmapped import MemoryUnmappedLog, UnmappedLog

Json = dict[str, Any]
LOCAL_PREFIX = f"{BASE}/CodeSystem/local/"


def source_system(sender: str, system: str | None, code: str) -> str:
    """URI for the original coding: `normalize_system`, except that a code sent as
    ICD-10 that is not a WHO code (`E11.900`, `I10.x00x002`) gets the Chinese edition
    system `urn:oid:2.16.156.10011.2.3.3.11`. Raises: ValueError (unusable sender)."""
    uri = normalize_system(sender, system)
    if uri == ICD10:
        rolled = icd10.rollup(code)
        if rolled is not None and rolled.original != rolled.who_code:
            return ICD10_CN
    return uri


def standard_codings(
    index: TerminologyIndex, sender: str, system: str | None, code: str
) -> tuple[list[Json], bool]:
    """(standard codings for a sent code, whether the code counts as mapped).

    A code reviewed as having no equivalent (`unmatched` in a map) is mapped with no
    codings; a code of a standard system we cannot check (CVX) is left alone and
    counts as mapped; a local or unknown ICD-10 code without a map is unmapped.
    """
    origin = source_system(sender, system, code)
    for cm in index.maps_for(sender):
        targets = cm.forward.get((origin, code))
        if targets:
            return _unique(
                origin, code, [t.coding() for t in targets if t.code and t.equivalence != "unmatched"]
            ), True
    if origin in (ICD10, ICD10_CN):
        rolled = icd10.rollup(code)
        who = index.codesystem(ICD10)
        concept = who.find(rolled.who_code) if who and rolled else None
        if rolled is None or concept is None:
            return [], False
        return _unique(
            origin, code, [{"system": ICD10, "code": concept.code, "display": concept.display}]
        ), True
    if origin.startswith(LOCAL_PREFIX):
        return [], False
    found = index.resolve(origin, code)
    if found is not None and found.display:
        return _unique(
            origin, code, [{"system": found.system, "code": found.code, "display": found.display}]
        ), True
    return [], True


def _unique(origin: str, code: str, codings: list[Json]) -> list[Json]:
    seen = {(origin, code)}
    out = []
    for coding in codings:
        key = (coding["system"], coding["code"])
        if key not in seen:
            seen.add(key)
            out.append(coding)
    return out


class Translator:
    """Translates coded elements for ingestion and counts unmapped codes.

    One per message (or per batch): pass its `log` to `TerminologyService.persist_unmapped`
    inside the message's unit of work.
    """

    def __init__(self, index: TerminologyIndex, log: UnmappedLog | None = None) -> None:
        self.index = index
        self.log: UnmappedLog = log if log is not None else MemoryUnmappedLog()

    def translate_coding(self, sender: str, system: str | None, code: str, display: str | None) -> list[Json]:
        """Standard codings (FHIR Coding dicts: system, code, display) to add next to the
        original coding of `code` as sent by `sender` (MSH-4.1) with coding system `system`
        (CWE-3 as sent: `L`, `ICD10`, `LN`, a URI, or a field label such as `HL70001`).

        Empty when there is nothing to add; an unmapped local code is recorded in `log`.
        Raises: ValueError (unusable sender). HL7 v2-to-FHIR IG, CWE → CodeableConcept.
        """
        code = code.strip()
        if not code:
            return []
        codings, mapped = standard_codings(self.index, sender, system, code)
        if not mapped:
            self.log.record(sender, source_system(sender, system, code), code, display)
        return codings
