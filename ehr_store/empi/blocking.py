"""Blocking keys: a record is filed under a few keys; a match looks only at records that
share one, so a lookup touches tens of candidates instead of 4 million residents.

Keys (names as in the rules file `[blocking].keys`):
- `resident_id`: `rid:<18-char 身份证号>` per valid number;
- `phone`: `ph:<national digits>` per phone;
- `family_birth_date`: `fb:<surname pinyin>|<YYYY-MM-DD>` (given-name typos, phone changes);
- `given_birth_date`: `gb:<given pinyin>|<YYYY-MM-DD>` (surname typos);
- `name_birth_year`: `ny:<full-name pinyin>|<YYYY>` (day/month typos, transpositions);
- `family_birth_month_county`: `fm:<surname pinyin>|<YYYY-MM>|<county>` (given-name and day typo together).

Pinyin keys make homophones (王晓东/王小东) share blocks. Pure; may import the standard
library and `ehr_store.empi.{config,features}`.
"""

from __future__ import annotations

from collections.abc import Iterable

from ehr_store.empi.config import BlockingKeyName
from ehr_store.empi.features import Features


def _one(name: BlockingKeyName, f: Features) -> list[str]:
    birth = f.birth_date
    if name == "resident_id":
        return [f"rid:{rid}" for rid in f.resident_ids]
    if name == "phone":
        return [f"ph:{phone}" for phone in f.phones]
    if name == "family_birth_date":
        return [f"fb:{f.family_py}|{birth}"] if f.family_py and birth else []
    if name == "given_birth_date":
        return [f"gb:{f.given_py}|{birth}"] if f.given_py and birth else []
    if name == "name_birth_year":
        return [f"ny:{f.family_py}{f.given_py}|{birth[:4]}"] if f.family_py and f.given_py and birth else []
    if name == "family_birth_month_county":
        if f.family_py and birth and f.county:
            return [f"fm:{f.family_py}|{birth[:7]}|{f.county}"]
        return []
    raise ValueError(f"unknown blocking key {name!r}")


def blocking_keys(features: Features, names: Iterable[BlockingKeyName]) -> list[str]:
    """The blocking keys of one record, deduplicated, in the order of `names`.

    Keys are at most 128 characters (longer ones are cut). Raises: ValueError (unknown name).
    """
    keys: list[str] = []
    for name in names:
        for key in _one(name, features):
            key = key[:128]
            if key not in keys:
                keys.append(key)
    return keys
