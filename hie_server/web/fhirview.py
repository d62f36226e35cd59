"""Small pure helpers that turn FHIR R4B JSON into what a person reads (names, codes, dates,
masked identifiers). Used by the templates.

May import: the standard library.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

Json = dict[str, Any]
RESIDENT_ID_SYSTEM = "urn:oid:2.16.156.10011.1.3"
GOLDEN_TAG = "golden"


def name_of(resource: Json) -> str:
    """HumanName text, or family+given joined the Chinese way (no space for CJK)."""
    names = resource.get("name") or []
    if not names:
        return str(resource.get("id", ""))
    n = names[0]
    if n.get("text"):
        return str(n["text"])
    family, given = str(n.get("family", "")), "".join(n.get("given", []))
    if family.isascii() and given.isascii():
        return f"{' '.join(n.get('given', []))} {family}".strip()
    return family + given


def mask(value: str) -> str:
    """Identifiers and phones shown masked (never a full 身份证号 on screen)."""
    return value if len(value) < 8 else f"{value[:4]}{'*' * (len(value) - 8)}{value[-4:]}"


def resident_id(patient: Json) -> str:
    for ident in patient.get("identifier", []):
        if ident.get("system") == RESIDENT_ID_SYSTEM and ident.get("value"):
            return mask(str(ident["value"]))
    return ""


def phone(patient: Json) -> str:
    return ", ".join(
        mask(str(t.get("value", ""))) for t in patient.get("telecom", []) if t.get("system") == "phone"
    )


def address(patient: Json) -> str:
    a = (patient.get("address") or [{}])[0]
    return str(
        a.get("text") or "".join([str(a.get(k, "")) for k in ("city", "district")] + list(a.get("line", [])))
    )


def facility_of(resource: Json) -> str:
    source = str((resource.get("meta") or {}).get("source", ""))
    return source.rsplit(":", 1)[-1] if source.startswith("urn:qyhie:facility:") else ""


def is_golden(patient: Json) -> bool:
    return any(t.get("code") == GOLDEN_TAG for t in (patient.get("meta") or {}).get("tag", []))


def code_text(concept: Json | None) -> str:
    """CodeableConcept text, else the first coding's display, else code."""
    if not concept:
        return ""
    if concept.get("text"):
        return str(concept["text"])
    for coding in concept.get("coding", []):
        if coding.get("display"):
            return str(coding["display"])
    codings = concept.get("coding", [])
    return str(codings[0].get("code", "")) if codings else ""


def code_key(concept: Json | None) -> str:
    """A stable key for grouping: LOINC code when present, else the first system|code."""
    codings = (concept or {}).get("coding", [])
    for coding in codings:
        if coding.get("system") == "http://loinc.org":
            return f"loinc|{coding.get('code')}"
    return f"{codings[0].get('system')}|{codings[0].get('code')}" if codings else code_text(concept)


def when(resource: Json) -> str:
    """The clinically relevant date of a resource as text (YYYY-MM-DD HH:MM or date)."""
    for key in (
        "effectiveDateTime",
        "occurrenceDateTime",
        "recordedDate",
        "onsetDateTime",
        "issued",
        "authoredOn",
        "started",
        "date",
        "start",
        "created",
    ):
        value = resource.get(key)
        if value:
            return short(str(value))
    period = resource.get("period") or resource.get("effectivePeriod") or {}
    return short(str(period.get("start", ""))) if period else ""


def short(value: str) -> str:
    if "T" in value:
        return value[:16].replace("T", " ")
    return value[:10]


def parse_when(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def quantity(resource: Json) -> str:
    q = resource.get("valueQuantity")
    if q:
        return f"{q.get('value', '')} {q.get('unit') or q.get('code') or ''}".strip()
    for key in ("valueString", "valueCodeableConcept", "valueBoolean", "valueInteger"):
        if key in resource:
            value = resource[key]
            return code_text(value) if isinstance(value, dict) else str(value)
    return ""


def ref_id(reference: Json | None) -> str:
    return str((reference or {}).get("reference", "")).rsplit("/", 1)[-1]
