"""Conformance checking with hl7apy — the only module importing it (DESIGN.md "HL7 v2 path").

Kept off the acknowledgement hot path (hl7apy parses ~20–50 ADT/s against ~30,000 for our
splitter, see `bench/bench_ingest.py`): used only for senders configured with
`FacilitySettings.validate` (a new sender being on-boarded) and by the benchmark. The text
is normalised first (CR terminators, no BOM, 4 encoding characters, MSH-12 trimmed to a
version hl7apy knows), and hl7apy never sees a segment it could drop: we only read its
verdict, never its parse tree.

May import: hl7apy, the standard library, `adapters.hl7v2.er7`.
"""

from __future__ import annotations

import re

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message

_VERSIONS = {"2.3": "2.3", "2.3.1": "2.3.1", "2.4": "2.4", "2.5": "2.5", "2.5.1": "2.5.1", "2.6": "2.6"}
_SEGMENT_END = re.compile(r"\r\n|\r|\n")


def normalise_for_hl7apy(text: str) -> str:
    """ER7 text as hl7apy accepts it: CR-separated, no BOM, no truncation character in
    MSH-2, a version it knows in MSH-12 (unknown → 2.5), Z-segments removed (hl7apy would
    reject or drop them; we keep them in our own archive and parse)."""
    lines = [ln for ln in _SEGMENT_END.split(text.lstrip("\ufeff")) if ln.strip()]
    if not lines:
        return ""
    sep = lines[0][3] if len(lines[0]) > 3 else "|"
    fields = lines[0].split(sep)
    if len(fields) > 1 and len(fields[1]) == 5:
        fields[1] = fields[1][:4]
    if len(fields) > 11:
        version = fields[11].split(fields[1][:1] or "^")[0]
        fields[11] = _VERSIONS.get(version, "2.5")
    lines[0] = sep.join(fields)
    return "\r".join(ln for ln in lines if not ln.startswith("Z")) + "\r"


def parse_with_hl7apy(text: str, *, find_groups: bool = True) -> object:
    """Parse with hl7apy (tolerant validation). Raises: HL7apyException, ValueError."""
    return parse_message(
        normalise_for_hl7apy(text), validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=find_groups
    )


def conformance_problems(text: str) -> list[str]:
    """Structure problems hl7apy finds under strict validation (empty when conformant).
    Never raises: a crash of the library is reported as a problem."""
    try:
        msg = parse_message(
            normalise_for_hl7apy(text), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True
        )
        msg.validate()
        return []
    except (HL7apyException, ValueError, KeyError, IndexError, AttributeError) as exc:
        return [f"hl7apy: {type(exc).__name__}: {exc}"[:250]]
