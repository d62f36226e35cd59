"""HL7 v2 datatypes → FHIR R4B datatypes (HL7 v2-to-FHIR IG datatype maps: XPN, CX, XAD,
XTN, TS/DTM, DT, CE/CWE, NM/SN, XCN).

Pure functions over component lists (`list[str]`, unescaped, 0-based: ``comps[0]`` is
component 1). Invalid values raise `ValueError`; the segment mappers turn that into an
`Hl7ContentError` 102 with the field's location.

May import: the standard library, `ehr_store` (public API and `ehr_store.resident_id`).
"""

from __future__ import annotations

import hashlib
import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from ehr_store.resident_id import RESIDENT_ID_SYSTEM, parse_resident_id

Json = dict[str, Any]

INVALID_RESIDENT_ID_SYSTEM = "urn:qyhie:resident-id:invalid"
"""System of a 身份证号 whose check failed: kept as sent, never matched as a resident id."""
RESIDENT_ID_CHECK_URL = "urn:qyhie:fhir:extension:resident-id-check"
"""Extension on such an Identifier: valueString = why the GB 11643 check failed."""
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
EXTENSION_BASE = "https://hie.gdqy.gov.cn/fhir/StructureDefinition"
"""Where the platform's extensions live (the terminology service's canonical base)."""
SEX_EXT = f"{EXTENSION_BASE}/patient-sex"
"""Patient extension, valueCodeableConcept: PID-8 as sent plus GB/T 2261.1 生理性别
(`urn:oid:2.16.156.10011.2.3.3.4`); `Patient.gender` stays FHIR administrative-gender."""
ETHNICITY_EXT = f"{EXTENSION_BASE}/patient-ethnicity"
"""Patient extension, valueCodeableConcept: PID-22 as sent plus GB/T 3304 民族
(`urn:oid:2.16.156.10011.2.3.3.3`)."""
PATIENT_CLASS_EXT = f"{EXTENSION_BASE}/encounter-patient-class"
"""Encounter extension, valueCodeableConcept: PV1-2 as sent (``O``, ``住院``…) plus its
standard coding; `Encounter.class` holds the v3 ActCode (AMB/IMP/EMER)."""
UCUM = "http://unitsofmeasure.org"

_DTM = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,4})?([+-]\d{4})?$")
_ID_OK = re.compile(r"[^A-Za-z0-9.\-]")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def c(comps: list[str], n: int) -> str:
    """Component n (1-based) or ""; the explicit null ``""`` reads as empty here."""
    v = comps[n - 1] if n <= len(comps) else ""
    return "" if v == '""' else v.strip()


def fhir_id(*parts: str) -> str:
    """A deterministic FHIR id (``[A-Za-z0-9.-]{1,64}``) from its parts: sanitised when it
    fits, else a readable prefix plus a SHA-1 digest (FHIR R4B datatypes §2.24.0.1 id)."""
    joined = "-".join(p for p in parts if p)
    clean = _ID_OK.sub("-", joined)
    if clean == joined and 0 < len(clean) <= 64:
        return clean
    digest = hashlib.sha1(joined.encode()).hexdigest()[:24]
    return f"{clean[:39].rstrip('-')}-{digest}"[-64:].lstrip("-.") or digest


def dtm(value: str, assume_offset: str | None) -> str:
    """HL7 TS/DTM → FHIR date or dateTime, precision kept (HL7 v2.5 §2.A.22 / §2.A.77).

    Day precision or coarser gives a FHIR date; with a time, the offset sent is used, else
    `assume_offset` (``+08:00``) when the sender is configured so, else only the date is kept
    (FHIR requires a zone with a time). Seconds are added when only minutes were sent.
    Raises: ValueError when not a valid timestamp.
    """
    m = _DTM.match(value.strip())
    if not m:
        raise ValueError(f"{value!r} is not an HL7 timestamp (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])")
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    _check_date(y, mo, d)
    out = y + (f"-{mo}" if mo else "") + (f"-{d}" if d else "")
    if hh is None:
        return out
    if int(hh) > 23 or int(mi or 0) > 59 or int(ss or 0) > 59:
        raise ValueError(f"{value!r} has an impossible time of day")
    offset = f"{tz[:3]}:{tz[3:]}" if tz else assume_offset
    if offset is None:
        return out
    return f"{out}T{hh}:{mi or '00'}:{ss or '00'}{frac or ''}{'Z' if offset in ('+00:00', 'Z') else offset}"


def dt(value: str) -> str:
    """HL7 DT (or a TS used as a date, e.g. PID-7) → FHIR date. Raises: ValueError."""
    m = _DTM.match(value.strip())
    if not m:
        raise ValueError(f"{value!r} is not an HL7 date (YYYY[MM[DD]])")
    y, mo, d = m.groups()[:3]
    _check_date(y, mo, d)
    return y + (f"-{mo}" if mo else "") + (f"-{d}" if d else "")


def _check_date(y: str, mo: str | None, d: str | None) -> None:
    try:
        date(int(y), int(mo or 1), int(d or 1))
    except ValueError:
        raise ValueError(f"{y}{mo or ''}{d or ''} is not a real date") from None


def is_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


_NAME_USE = {"L": "official", "D": "usual", "M": "maiden", "N": "nickname", "A": "anonymous", "C": "old"}


def human_name(comps: list[str]) -> Json | None:
    """XPN → HumanName: family = XPN.1, given = [XPN.2, XPN.3], prefix XPN.5, use from XPN.7;
    `text` = family + given with no space for Chinese names, else "given family"."""
    family, given, middle = c(comps, 1), c(comps, 2), c(comps, 3)
    if not family and not given:
        return None
    out: Json = {}
    use = _NAME_USE.get(c(comps, 7))
    if use:
        out["use"] = use
    givens = [g for g in (given, middle) if g]
    if is_cjk(family + given):
        out["text"] = family + "".join(givens)
    else:
        out["text"] = " ".join([*givens, family]).strip()
    if family:
        out["family"] = family
    if givens:
        out["given"] = givens
    if c(comps, 5):
        out["prefix"] = [c(comps, 5)]
    return out


def mrn_system(facility: str, configured: str | None = None) -> str:
    """Identifier.system of a facility's MRNs: the registry's value, else
    ``urn:qyhie:facility:<MSH-4.1>:mrn``."""
    return configured or f"urn:qyhie:facility:{facility}:mrn"


def resident_identifier(raw: str) -> Json:
    """A 身份证号 → Identifier. Valid: system `urn:oid:2.16.156.10011.1.3`, canonical value.
    Invalid (GB 11643 check fails): kept as sent under `INVALID_RESIDENT_ID_SYSTEM` with a
    `RESIDENT_ID_CHECK_URL` extension giving the reason, so it is visible and never links."""
    rid = parse_resident_id(raw)
    ident: Json = {
        "type": {"coding": [{"system": V2_0203, "code": "NNCHN", "display": "National ID (China)"}]},
        "value": rid.value,
    }
    if rid.valid:
        ident["use"] = "official"
        ident["system"] = RESIDENT_ID_SYSTEM
    else:
        ident["system"] = INVALID_RESIDENT_ID_SYSTEM
        ident["extension"] = [{"url": RESIDENT_ID_CHECK_URL, "valueString": rid.reason or "invalid"}]
    return ident


def identifier(comps: list[str], facility: str, configured_mrn: str | None = None) -> Json | None:
    """CX → Identifier: value CX.1, type CX.5 (v2-0203), system from the type and CX.4.

    NNCHN (or ID with assigner CHNMPS) → a resident identifier (see `resident_identifier`);
    MR/PI/empty → the facility's MRN system; other types → ``urn:qyhie:facility:<f>:<type>``.
    """
    value, authority, id_type = c(comps, 1), c(comps, 4), c(comps, 5).upper()
    if not value:
        return None
    if id_type == "NNCHN" or (id_type in ("ID", "NI", "NN") and authority.upper() in ("CHNMPS", "CHN", "")):
        return resident_identifier(value)
    code = id_type or "MR"
    system = mrn_system(
        authority or facility, configured_mrn if not authority or authority == facility else None
    )
    if code not in ("MR", "PI", "PT"):
        system = f"urn:qyhie:facility:{authority or facility}:{code.lower()}"
    ident: Json = {
        "use": "usual",
        "type": {"coding": [{"system": V2_0203, "code": code}]},
        "system": system,
        "value": value,
    }
    if authority:
        ident["assigner"] = {"display": authority}
    return ident


_ADDR_USE = {"H": "home", "O": "work", "B": "work", "C": "temp", "M": "home", "BA": "old"}


def address(comps: list[str]) -> Json | None:
    """XAD → Address: line [XAD.1, XAD.2] (village, town), city XAD.3 (county-level unit),
    state XAD.4, postalCode XAD.5, country XAD.6, use from XAD.7, district XAD.9 (the GB/T
    2260 county code, kept as sent); `text` in Chinese order (province … village)."""
    lines = [x for x in (c(comps, 1), c(comps, 2)) if x]
    out: Json = {}
    use = _ADDR_USE.get(c(comps, 7))
    if use:
        out["use"] = use
    if lines:
        out["line"] = lines
    for key, n in (("city", 3), ("district", 9), ("state", 4), ("postalCode", 5), ("country", 6)):
        if c(comps, n):
            out[key] = c(comps, n)
    if not out or set(out) <= {"use", "country"}:
        return None
    out["text"] = "".join(x for x in (c(comps, 4), c(comps, 3), c(comps, 2), c(comps, 1)) if x)
    return out


_TEL_USE = {"PRN": "home", "WPN": "work", "ORN": "home", "VHN": "temp", "EMR": "home", "ASN": "work"}


def contact_point(comps: list[str]) -> Json | None:
    """XTN → ContactPoint: value from XTN.12 (unformatted), XTN.4 (email), XTN.5–7 or XTN.1;
    system from XTN.3 (PH/CP phone, FX fax, BP pager, Internet/X.400 email); use from XTN.2
    (CP → mobile)."""
    equipment, use_code = c(comps, 3).upper(), c(comps, 2).upper()
    if equipment in ("INTERNET", "X.400") or use_code == "NET":
        value, system = c(comps, 4) or c(comps, 1), "email"
    else:
        number = (
            c(comps, 12) or "".join(x for x in (c(comps, 5), c(comps, 6), c(comps, 7)) if x) or c(comps, 1)
        )
        value = number + (f" ext. {c(comps, 8)}" if c(comps, 8) else "")
        system = {"FX": "fax", "BP": "pager"}.get(equipment, "phone")
    if not value:
        return None
    out: Json = {"system": system, "value": value}
    use = "mobile" if equipment == "CP" else _TEL_USE.get(use_code)
    if use:
        out["use"] = use
    return out


CODE_SYSTEMS = {
    "LN": "http://loinc.org",
    "SCT": "http://snomed.info/sct",
    "SNM": "http://snomed.info/sct",
    "I10": "http://hl7.org/fhir/sid/icd-10",
    "ICD10": "http://hl7.org/fhir/sid/icd-10",
    "I10C": "http://hl7.org/fhir/sid/icd-10-cn",
    "CVX": "http://hl7.org/fhir/sid/cvx",
    "UCUM": UCUM,
    "HL70078": "http://terminology.hl7.org/CodeSystem/v2-0078",
}


def code_system(name: str, facility: str) -> str:
    """Coding.system for a CE/CWE coding-system id (CE.3): known ids → their URI, local
    (``L``, ``99xxx``, empty or unknown) → ``urn:qyhie:facility:<f>:code[:<id>]``."""
    key = name.strip().upper()
    if key in CODE_SYSTEMS:
        return CODE_SYSTEMS[key]
    if key.startswith("HL7") and key[3:].isdigit():
        return f"http://terminology.hl7.org/CodeSystem/v2-{key[3:]}"
    suffix = "" if key in ("", "L", "LOCAL") else ":" + _ID_OK.sub("-", name.strip())
    return f"urn:qyhie:facility:{facility}:code{suffix}"


def codeable_concept(comps: list[str], facility: str) -> Json | None:
    """CE/CWE → CodeableConcept: codings from the triplets (CE.1–3, CE.4–6), text CE.9 or CE.2."""
    codings: list[Json] = []
    for base in (0, 3):
        code, display, system = c(comps, base + 1), c(comps, base + 2), c(comps, base + 3)
        if code:
            coding: Json = {"system": code_system(system, facility), "code": code}
            if display:
                coding["display"] = display
            codings.append(coding)
    text = c(comps, 9) or c(comps, 2) or c(comps, 5)
    if not codings and not text:
        return None
    out: Json = {}
    if codings:
        out["coding"] = codings
    if text:
        out["text"] = text
    return out


def decimal(value: str) -> Decimal:
    """HL7 NM → Decimal with the precision sent. Raises: ValueError."""
    v = value.strip()
    if v.startswith("+"):
        v = v[1:]
    try:
        d = Decimal(v)
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number (NM)") from None
    if not d.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return d
