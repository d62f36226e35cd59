"""Canonical URLs of the code systems, value sets and concept maps the platform ships.

Where a Chinese national standard has a registered OID (the ones used by the WS/T 500
shared-document CDA templates), the canonical is that OID as `urn:oid:`; international
systems use their HL7-registered URIs; content the platform defines itself lives under
`BASE` (the Qingyuan HIE's canonical base, WS/T 790.9 术语注册).

| content                                    | canonical                                        |
|--------------------------------------------|--------------------------------------------------|
| ICD-10 (WHO 2019)                          | http://hl7.org/fhir/sid/icd-10                   |
| ICD-10 国家临床版 2.0 / 医保版 2.0 codes    | urn:oid:2.16.156.10011.2.3.3.11 (rolled up to WHO) |
| LOINC (curated subset, zh designations)    | http://loinc.org                                 |
| UCUM                                       | http://unitsofmeasure.org                        |
| 生理性别 GB/T 2261.1                        | urn:oid:2.16.156.10011.2.3.3.4                   |
| 婚姻状况 GB/T 2261.2                        | urn:oid:2.16.156.10011.2.3.3.5                   |
| 民族 GB/T 3304                              | urn:oid:2.16.156.10011.2.3.3.3                   |
| 身份证件类别 CV02.01.101                    | urn:oid:2.16.156.10011.2.3.1.1                   |
| 行政区划 GB/T 2260 (广东, 清远 to township)  | BASE/CodeSystem/gb-t-2260                        |
| 卫生机构类别 WS 218                          | BASE/CodeSystem/ws-218                           |
| 法定传染病 (甲/乙/丙类)                      | BASE/CodeSystem/notifiable-disease               |
| ValueSet of each CodeSystem above          | BASE/ValueSet/<id>                               |
| per-sender local-code ConceptMap           | BASE/ConceptMap/local-<SENDER>                   |
| regional default ConceptMap (all senders)  | BASE/ConceptMap/local-default                    |
| a sender's local code system               | BASE/CodeSystem/local/<SENDER>/<label>           |

May import: the standard library only.
"""

from __future__ import annotations

import re

BASE = "https://hie.gdqy.gov.cn/fhir"
"""Canonical base of the Qingyuan regional platform's own terminology resources."""

ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD10_CN = "urn:oid:2.16.156.10011.2.3.3.11"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CVX = "http://hl7.org/fhir/sid/cvx"
SEX = "urn:oid:2.16.156.10011.2.3.3.4"
MARITAL = "urn:oid:2.16.156.10011.2.3.3.5"
ETHNICITY = "urn:oid:2.16.156.10011.2.3.3.3"
ID_DOCUMENT = "urn:oid:2.16.156.10011.2.3.1.1"
DIVISION = f"{BASE}/CodeSystem/gb-t-2260"
INSTITUTION_TYPE = f"{BASE}/CodeSystem/ws-218"
NOTIFIABLE = f"{BASE}/CodeSystem/notifiable-disease"
ADMINISTRATIVE_GENDER = "http://hl7.org/fhir/administrative-gender"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
SENDER_IDENTIFIER = f"{BASE}/sid/hl7v2-sending-facility"
"""ConceptMap.identifier.system naming the sender (MSH-4) a local-code map belongs to."""
DEFAULT_SENDER = "default"

_HL7_0396 = {
    "LN": LOINC,
    "LOINC": LOINC,
    "I10": ICD10,
    "ICD10": ICD10,
    "ICD-10": ICD10,
    "I10C": ICD10_CN,
    "ICD10CN": ICD10_CN,
    "UCUM": UCUM,
    "CVX": CVX,
    "HL70001": "http://terminology.hl7.org/CodeSystem/v2-0001",
    "HL70004": "http://terminology.hl7.org/CodeSystem/v2-0004",
    "HL70002": "http://terminology.hl7.org/CodeSystem/v2-0002",
    "HL70189": "http://terminology.hl7.org/CodeSystem/v2-0189",
    "GB2261.1": SEX,
    "GB/T2261.1": SEX,
    "GB2261.2": MARITAL,
    "GB3304": ETHNICITY,
    "GB/T3304": ETHNICITY,
    "GB2260": DIVISION,
}

_SENDER_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_LOCAL_LABELS = ("", "L", "LOCAL")
_ALIASES = {"http://hl7.org/fhir/sid/icd-10-cn": ICD10_CN}
"""Other URIs seen for our systems (the HL7 v2 mapping's `I10C`)."""
_FACILITY_URN = re.compile(r"^urn:qyhie:facility:([A-Za-z0-9_.-]{1,64}):code(?::(.+))?$")
"""The HL7 v2 mapping's local-code URIs (`adapters.hl7v2.datatypes.code_system`)."""


def check_sender(sender: str) -> str:
    """Return `sender` (MSH-4.1 namespace id) if usable in a canonical URL.

    Raises: ValueError when it is empty or holds characters other than A-Z a-z 0-9 _ . -
    """
    if not _SENDER_RE.match(sender):
        raise ValueError(f"sender {sender!r} must be 1-64 characters of A-Z a-z 0-9 _ . -")
    return sender


def local_system(sender: str, label: str | None) -> str:
    """URI of a sender's local code system (HL7 v2 CWE-3 `L`, `99xxx`, or a field label).

    `local_system("QYRMYY", "L")` -> `https://hie.gdqy.gov.cn/fhir/CodeSystem/local/QYRMYY/L`;
    an empty label and `LOCAL` mean `L`. Raises: ValueError for an unusable sender.
    """
    tail = "L" if (label or "").strip().upper() in _LOCAL_LABELS else label
    return f"{BASE}/CodeSystem/local/{check_sender(sender)}/{tail}"


def conceptmap_url(sender: str) -> str:
    """Canonical URL of the local-code ConceptMap of `sender` (or `DEFAULT_SENDER`)."""
    return f"{BASE}/ConceptMap/local-{check_sender(sender)}"


def normalize_system(sender: str, system: str | None) -> str:
    """Map what a feed sent as a coding system to a URI.

    URIs (`http…`, `urn:…`) pass unchanged (the HL7 v2 mapping's
    `urn:qyhie:facility:<F>:code[:<id>]` become `local_system(F, id)`); HL7 v2 Table 0396 names (`LN`, `I10`,
    `ICD10`, `CVX`, `HL70001`, …) become their registered URIs; anything else (`L`,
    `99QY`, None) is the sender's local system (see `local_system`). HL7 v2.5 §2.A.13 CWE-3.
    """
    if system and (system.startswith(("http://", "https://", "urn:"))):
        local = _FACILITY_URN.match(system)
        if local:
            return local_system(local.group(1), local.group(2))
        return _ALIASES.get(system, system)
    if system:
        known = _HL7_0396.get(system.upper().replace(" ", ""))
        if known:
            return known
    return local_system(sender, system)
