"""Numeric HL7 v2 values → FHIR Quantity, Range, Ratio (HL7 v2-to-FHIR IG: NM, SN, CQ;
OBX-6 units, OBX-7 reference range).

Units: the unit as sent is always kept in `Quantity.unit`; `system`/`code` are UCUM only
when the unit is valid UCUM or has a known local spelling.

May import: the standard library, `adapters.hl7v2.datatypes`.
"""

from __future__ import annotations

import re
from typing import Any

from adapters.hl7v2.datatypes import UCUM, decimal

Json = dict[str, Any]

_UCUM_KNOWN = {
    "g/L",
    "g/dL",
    "mg/L",
    "mg/dL",
    "ug/L",
    "ng/mL",
    "pg/mL",
    "mmol/L",
    "umol/L",
    "nmol/L",
    "pmol/L",
    "mol/L",
    "U/L",
    "[IU]/L",
    "m[IU]/L",
    "%",
    "10*9/L",
    "10*12/L",
    "10*6/L",
    "fL",
    "pg",
    "s",
    "min",
    "h",
    "d",
    "mL",
    "L",
    "kg",
    "g",
    "cm",
    "m",
    "mm[Hg]",
    "Cel",
    "/min",
    "kg/m2",
    "mL/min",
    "1",
    "mm/h",
    "[pH]",
    "mL/min/{1.73_m2}",
}
_LOCAL_UNITS = {
    "×10^9/L": "10*9/L",
    "x10^9/L": "10*9/L",
    "10^9/L": "10*9/L",
    "×10^12/L": "10*12/L",
    "10^12/L": "10*12/L",
    "μmol/L": "umol/L",
    "µmol/L": "umol/L",
    "mmHg": "mm[Hg]",
    "℃": "Cel",
    "°C": "Cel",
    "次/分": "/min",
    "IU/L": "[IU]/L",
    "mIU/L": "m[IU]/L",
    "kg/m²": "kg/m2",
    "mm/H": "mm/h",
    "ml": "mL",
    "ML": "mL",
    "毫升": "mL",
    "天": "d",
    "小时": "h",
}
_COMPARATORS = ("<=", ">=", "<", ">")


def ucum(unit: str) -> str | None:
    """The UCUM code of a unit as sent, or None when unknown."""
    u = unit.strip()
    if u in _UCUM_KNOWN:
        return u
    return _LOCAL_UNITS.get(u)


def quantity(value: str, unit: str = "", comparator: str = "") -> Json:
    """A Quantity from an NM value and a unit (CE.1 or text). Raises: ValueError."""
    out: Json = {"value": decimal(value)}
    if comparator:
        out["comparator"] = comparator
    if unit:
        out["unit"] = unit
        code = ucum(unit)
        if code:
            out["system"] = UCUM
            out["code"] = code
    return out


def structured_numeric(comps: list[str], unit: str) -> tuple[str, Json]:
    """SN → (`valueQuantity` | `valueRange` | `valueRatio`, value) per the v2-to-FHIR IG.

    SN.1 comparator (``<`` ``>`` ``<=`` ``>=`` ``=`` ``<>``), SN.2 number, SN.3 separator
    (``-`` range, ``:``/``/`` ratio, ``+`` suffix), SN.4 second number.
    Raises: ValueError.
    """
    comp = comps[0].strip() if comps else ""
    n1 = comps[1].strip() if len(comps) > 1 else ""
    sep = comps[2].strip() if len(comps) > 2 else ""
    n2 = comps[3].strip() if len(comps) > 3 else ""
    if comp and comp not in (*_COMPARATORS, "=", "<>"):
        raise ValueError(f"SN comparator {comp!r} is not one of < > <= >= = <>")
    if sep in (":", "/") and n2:
        return "valueRatio", {"numerator": quantity(n1), "denominator": quantity(n2, unit)}
    if sep == "-" and n2:
        return "valueRange", {"low": quantity(n1, unit), "high": quantity(n2, unit)}
    if not n1:
        raise ValueError("SN has no number")
    return "valueQuantity", quantity(n1, unit, comp if comp in _COMPARATORS else "")


_RANGE = re.compile(r"^\s*([<>]=?)?\s*(-?\d+(?:\.\d+)?)\s*(?:(?:-|~|—|至)\s*(-?\d+(?:\.\d+)?))?\s*$")


def reference_range(text: str, unit: str) -> Json | None:
    """OBX-7 → Observation.referenceRange: ``115-175`` → low/high, ``<5`` → high, ``>10`` →
    low; anything else is kept as `text`."""
    if not text.strip():
        return None
    m = _RANGE.match(text)
    if not m:
        return {"text": text}
    comp, a, b = m.groups()
    if b is not None and not comp:
        return {"low": quantity(a, unit), "high": quantity(b, unit), "text": text}
    if comp and comp.startswith("<"):
        return {"high": quantity(a, unit), "text": text}
    if comp and comp.startswith(">"):
        return {"low": quantity(a, unit), "text": text}
    return {"text": text}
