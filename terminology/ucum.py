"""UCUM unit validation (The Unified Code for Units of Measure, case-sensitive c/s codes).

Uses `ucumvert` (MIT; a lark grammar generated from the UCUM essence XML, pure Python).
`ucumate` was measured too: it needs a Java 21 runtime through JPype and failed to start
on the platform's JVM, so it is not used.

May import: the standard library, `ucumvert`, `terminology.canonical`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from terminology.canonical import UCUM

SYSTEM = UCUM


@lru_cache(maxsize=1)
def _parser() -> Any:
    import ucumvert  # type: ignore[import-untyped]  # imported lazily: building the grammar takes ~30 ms

    return ucumvert.get_ucum_parser()


@lru_cache(maxsize=4096)
def is_valid_unit(unit: str) -> bool:
    """True when `unit` is a syntactically valid UCUM expression made of UCUM units
    (`10*9/L`, `g/L`, `mmol/L`, `umol/L`, `%`, `U/L`, `mm[Hg]`, `/min`, `{ratio}`).

    UCUM §1-§15 (c/s codes); `mmHg` (not UCUM: `mm[Hg]`) and blanks are rejected.
    """
    if not unit or unit != unit.strip() or " " in unit:
        return False
    try:
        _parser().parse(unit)
    except Exception:  # lark raises a family of UnexpectedInput errors; any of them means invalid
        return False
    return True


def check_unit(unit: str) -> str:
    """Return `unit` when valid. Raises: ValueError naming the unit otherwise."""
    if not is_valid_unit(unit):
        raise ValueError(f"{unit!r} is not a valid UCUM unit")
    return unit
