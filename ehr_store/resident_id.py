"""身份证号 (resident identity card number, `resident_id`) checks per GB 11643-1999.

18 characters: 6-digit administrative division code (GB/T 2260), 8-digit birth date
(YYYYMMDD), 3-digit sequence (odd = male, even = female), 1 check character (ISO 7064
MOD 11-2, `0-9` or `X`). Legacy 15-digit numbers (GB 11643-1989: 6 + YYMMDD + 3) are
upgraded by inserting `19` before the year and computing the check character.

May import: the standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

RESIDENT_ID_SYSTEM = "urn:oid:2.16.156.10011.1.3"
"""Identifier.system for 身份证号 (INTERFACES.md data conventions)."""

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_RE18 = re.compile(r"^\d{17}[\dX]$")
_RE15 = re.compile(r"^\d{15}$")


def check_character(first17: str) -> str:
    """The GB 11643-1999 check character for the first 17 digits.

    Raises: ValueError if `first17` is not 17 ASCII digits.
    """
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("need exactly 17 digits")
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


@dataclass(frozen=True, slots=True)
class ResidentId:
    """A checked 身份证号: `value` is the canonical 18-character form (uppercase X)."""

    value: str
    valid: bool
    reason: str | None = None

    @property
    def area_code(self) -> str:
        """GB/T 2260 administrative division code (6 digits; historic codes accepted)."""
        return self.value[:6]

    @property
    def birth_date(self) -> date | None:
        """Birth date encoded in the number, or None when it is not a real date."""
        try:
            return date(int(self.value[6:10]), int(self.value[10:12]), int(self.value[12:14]))
        except ValueError:
            return None

    @property
    def sex(self) -> str:
        """`male` or `female` from the sequence code's parity (FHIR administrative-gender)."""
        return "male" if int(self.value[16]) % 2 else "female"


def parse_resident_id(raw: str) -> ResidentId:
    """Normalise and check a 身份证号 as sent (spaces trimmed, lowercase x accepted, 15 → 18).

    Returns a ResidentId whose `valid` is False (with `reason`) when the shape, the birth
    date or the check character is wrong; the value is then kept as sent (uppercased).
    """
    value = raw.strip().upper()
    if _RE15.match(value):
        first17 = value[:6] + "19" + value[6:15]
        value = first17 + check_character(first17)
    if not _RE18.match(value):
        return ResidentId(value, False, "not 18 characters of digits with a final digit or X")
    rid = ResidentId(value, True)
    if rid.birth_date is None:
        return ResidentId(value, False, "birth date in the number is not a real date")
    if check_character(value[:17]) != value[17]:
        return ResidentId(value, False, "check character does not match (GB 11643-1999 MOD 11-2)")
    return rid


def is_valid_resident_id(raw: str) -> bool:
    """True when `raw` is a well-formed 身份证号 with a correct check character."""
    return parse_resident_id(raw).valid
