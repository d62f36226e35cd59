"""Demographic features of a Patient, normalised for matching (pure, no database).

`Features` is what the comparators look at and what the candidate index stores (as JSON)
so that a match never re-parses candidate Patients. Names keep their Chinese characters
and carry toneless pinyin (pypinyin) for homophones; phones are reduced to national
digits; the address is reduced to GB/T 2260 county code, township and village.

May import: pypinyin, the standard library, `ehr_store.resident_id`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from pypinyin import lazy_pinyin

from ehr_store.resident_id import RESIDENT_ID_SYSTEM, parse_resident_id

_TOWN_SUFFIXES = ("镇", "乡", "街道", "街道办事处")
_VILLAGE_SUFFIXES = ("村", "社区", "居委会", "村委会")
_COUNTY_CODE = re.compile(r"^\d{6}$")
_NON_DIGIT = re.compile(r"\D")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Features:
    """Normalised demographics. Empty string / empty tuple = not known.

    `family`/`given`: characters as sent (spaces removed); `family_py`/`given_py`: toneless
    pinyin syllables joined without separator; `birth_date`: `YYYY-MM-DD` (only full dates);
    `sex`: FHIR administrative-gender; `phones`: national numbers (digits); `county`: GB/T
    2260 code; `resident_ids`: VALID 身份证号s in canonical 18-character form; `mrns`:
    facility record numbers as `system|value` (identifiers typed MR/PI/PT, v2-0203).
    """

    family: str = ""
    given: str = ""
    family_py: str = ""
    given_py: str = ""
    birth_date: str = ""
    sex: str = ""
    phones: tuple[str, ...] = ()
    county: str = ""
    town: str = ""
    village: str = ""
    resident_ids: tuple[str, ...] = ()
    mrns: tuple[str, ...] = ()
    invalid_resident_ids: tuple[str, ...] = field(default=(), compare=False)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name in _FIELD_NAMES
            for value in (getattr(self, name),)
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Features:
        """Inverse of `to_json`; unknown keys are ignored."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("phones", "resident_ids", "mrns", "invalid_resident_ids"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)


_FIELD_NAMES = tuple(f.name for f in fields(Features))


@functools.lru_cache(maxsize=65_536)
def pinyin(text: str) -> str:
    """Toneless pinyin of Chinese characters, syllables concatenated (`王晓东` → `wangxiaodong`).

    Non-Chinese characters pass through lowercased. Cached (names repeat; pypinyin's
    segmentation costs tens of microseconds a name).
    """
    return "".join(lazy_pinyin(text)).lower() if text else ""


def normalise_phone(raw: str) -> str:
    """National digits of a phone number: strips punctuation and a +86/0086/86 prefix.

    `+86 138-0000-1234` → `13800001234`; landlines keep their area code (`020-8888 1234` →
    `02088881234`). Returns "" when fewer than 7 digits remain.
    """
    digits = _NON_DIGIT.sub("", raw)
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) - len(prefix) in (11, 10, 12):
            digits = digits[len(prefix) :]
            break
    return digits if len(digits) >= 7 else ""


def _clean(text: str | None) -> str:
    return _SPACE.sub("", text or "")


def _split_name(name: dict[str, Any]) -> tuple[str, str]:
    family = _clean(name.get("family"))
    given = "".join(_clean(g) for g in name.get("given", []) if isinstance(g, str))
    if not family and not given:
        text = _clean(name.get("text"))
        if text:  # Chinese names: one-character surname by default
            family, given = text[:1], text[1:]
    return family, given


def _pick_name(names: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    ordered = sorted(names, key=lambda n: {"official": 0, "usual": 1}.get(str(n.get("use")), 2))
    return ordered[0] if ordered else None


def _address_parts(address: dict[str, Any]) -> tuple[str, str, str]:
    parts = [*address.get("line", []), address.get("city"), address.get("district"), address.get("text")]
    county = town = village = ""
    for part in parts:
        value = _clean(part) if isinstance(part, str) else ""
        if not value:
            continue
        if _COUNTY_CODE.match(value):
            county = county or value
        elif value.endswith(_TOWN_SUFFIXES):
            town = town or value
        elif value.endswith(_VILLAGE_SUFFIXES):
            village = village or value
    for ext in address.get("extension", []):
        code = str(ext.get("valueString") or ext.get("valueCode") or "")
        if not county and _COUNTY_CODE.match(code):
            county = code
    return county, town, village


def resident_ids_of(patient: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(valid, invalid) 身份证号s among `Patient.identifier` with system urn:oid:2.16.156.10011.1.3.

    Valid ones in canonical form (15 → 18, uppercase X); invalid ones as sent.
    """
    valid: list[str] = []
    invalid: list[str] = []
    for ident in patient.get("identifier", []):
        if ident.get("system") != RESIDENT_ID_SYSTEM or not ident.get("value"):
            continue
        rid = parse_resident_id(str(ident["value"]))
        target = valid if rid.valid else invalid
        value = rid.value if rid.valid else str(ident["value"])
        if value not in target:
            target.append(value)
    return tuple(valid), tuple(invalid)


_MRN_TYPES = frozenset({"MR", "PI", "PT"})


def mrns_of(patient: dict[str, Any]) -> tuple[str, ...]:
    """Facility record numbers of a Patient as `system|value`: identifiers with a system and
    a v2-0203 type MR/PI/PT (PID-3 mapping). One facility = one MRN system."""
    out: list[str] = []
    for ident in patient.get("identifier", []):
        codes = {str(c.get("code", "")).upper() for c in ident.get("type", {}).get("coding", [])}
        if ident.get("system") and ident.get("value") and codes & _MRN_TYPES:
            key = f"{ident['system']}|{ident['value']}"
            if key not in out:
                out.append(key)
    return tuple(out)


def extract(patient: dict[str, Any]) -> Features:
    """Features of a FHIR R4B Patient (dict as stored).

    Uses the official (else first) name, `birthDate` when a full date, `gender`, phone
    `telecom`s, the home (else first) address. County code: `Address.district` or a
    6-digit line (PID-11.9 mapping), else the area code of a valid 身份证号.
    """
    name = _pick_name(patient.get("name", [])) or {}
    family, given = _split_name(name)
    birth = str(patient.get("birthDate") or "")
    phones: list[str] = []
    for telecom in patient.get("telecom", []):
        if telecom.get("system", "phone") in ("phone", "sms") and telecom.get("value"):
            phone = normalise_phone(str(telecom["value"]))
            if phone and phone not in phones:
                phones.append(phone)
    addresses = sorted(patient.get("address", []), key=lambda a: 0 if a.get("use") == "home" else 1)
    county, town, village = _address_parts(addresses[0]) if addresses else ("", "", "")
    valid, invalid = resident_ids_of(patient)
    if not county and valid:
        county = valid[0][:6]
    return Features(
        family=family,
        given=given,
        family_py=pinyin(family),
        given_py=pinyin(given),
        birth_date=birth if len(birth) == 10 else "",
        sex=str(patient.get("gender") or ""),
        phones=tuple(phones),
        county=county,
        town=town,
        village=village,
        resident_ids=valid,
        mrns=mrns_of(patient),
        invalid_resident_ids=invalid,
    )
