"""Synthetic residents of Qingyuan and the forms their 身份证号 take in messages.

A resident's `resident_id` is always a valid GB 11643-1999 number (area code = county,
birth date, sequence whose parity gives the sex, check character). Messages may carry it
as sent by a careless clerk: with a wrong check character, as a legacy 15-digit number, or
with a lowercase `x`.

May import: `ehr_store.resident_id` (check character), the standard library.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from adapters.synth.geography import pick_county, pick_village
from adapters.synth.names import pick_given, pick_phone, pick_surname
from ehr_store.resident_id import check_character

IdForm = Literal["18", "15", "lower_x", "invalid"]


@dataclass(frozen=True, slots=True)
class Resident:
    """One synthetic resident: the truth the exchange should reconstruct."""

    key: str
    resident_id: str
    family: str
    given: str
    sex: str
    birth: date
    county: str
    town: str
    village: str
    phone: str

    def as_json(self) -> dict[str, str]:
        """The `residents.jsonl` record (same shape as the shared sample feed)."""
        return {
            "key": self.key, "resident_id": self.resident_id, "family": self.family, "given": self.given,
            "sex": self.sex, "birth": self.birth.isoformat(), "county": self.county, "town": self.town,
            "village": self.village, "phone": self.phone,
        }


_EPOCH = date(1930, 1, 1)
_AGE_BANDS = ((0, 6, 1.2), (6, 18, 1.5), (18, 45, 3.5), (45, 65, 3.0), (65, 95, 1.8))


def make_resident(rng: random.Random, key: str, today: date) -> Resident:
    """A resident drawn from the population model (county by weight, age by band).

    `today` anchors ages; the returned `resident_id` has a valid check character.
    """
    county = pick_county(rng)
    sex = "M" if rng.random() < 0.51 else "F"
    lo, hi, _ = rng.choices(_AGE_BANDS, weights=[b[2] for b in _AGE_BANDS])[0]
    birth = today - timedelta(days=rng.randrange(lo * 365 + 1, hi * 365))
    birth = max(birth, _EPOCH)
    seq = rng.randrange(0, 500) * 2 + (1 if sex == "M" else 0)
    first17 = f"{county.code}{birth:%Y%m%d}{seq:03d}"
    return Resident(
        key=key,
        resident_id=first17 + check_character(first17),
        family=pick_surname(rng, county.code),
        given=pick_given(rng, sex),
        sex=sex,
        birth=birth,
        county=county.code,
        town=rng.choice(county.towns),
        village=pick_village(rng),
        phone=pick_phone(rng),
    )


def id_as_sent(rng: random.Random, resident_id: str, birth: date, want: IdForm) -> tuple[str, IdForm]:
    """The 身份证号 as a facility sends it, and the form actually produced.

    `15` only for births in 1900-1999 and `lower_x` only when the check character is X;
    otherwise the plain 18-character form is sent. `invalid` changes the check character
    (or one digit) so that the GB 11643 check fails.
    """
    if want == "15" and 1900 <= birth.year <= 1999:
        return resident_id[:6] + resident_id[8:17], "15"
    if want == "lower_x" and resident_id.endswith("X"):
        return resident_id[:17] + "x", "lower_x"
    if want == "invalid":
        first17 = resident_id[:17]
        if rng.random() < 0.5:
            wrong = rng.choice([c for c in "0123456789X" if c != resident_id[17]])
            return first17 + wrong, "invalid"
        pos = rng.randrange(14, 17)
        digits = [d for d in "0123456789" if d != first17[pos]]
        for d in rng.sample(digits, len(digits)):
            changed = first17[:pos] + d + first17[pos + 1 :]
            if check_character(changed) != resident_id[17]:
                return changed + resident_id[17], "invalid"
    return resident_id, "18"


def transpose_birth(birth: date) -> date | None:
    """The birth date with day and month swapped (a data-entry slip), or None if impossible."""
    if birth.day > 12 or birth.day == birth.month:
        return None
    try:
        return birth.replace(month=birth.day, day=birth.month)
    except ValueError:
        return None
