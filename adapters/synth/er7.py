"""ER7 (pipe-and-hat) encoding helpers for the synthetic feed: escaping, timestamps, the
MSH segment, and turning segments into the bytes a facility sends.

HL7 v2.5 §2.5 (message construction), §2.7 (escape sequences), §2.A.85 (DTM).

May import: `adapters.synth.facilities`, the standard library.
"""

from __future__ import annotations

from datetime import date, datetime

from adapters.synth.facilities import TERMINATORS, Facility

RECEIVING = ("QYHIE", "QYWJJ")
"""MSH-5/MSH-6: the exchange and the Qingyuan health commission (清远市卫健局)."""

_ESCAPES = (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\"))


def escape(value: str) -> str:
    """Escape the encoding characters in a field value (HL7 v2.5 §2.7); `\\` first."""
    for raw, esc in _ESCAPES:
        value = value.replace(raw, esc)
    return value


def dtm(facility: Facility, when: datetime) -> str:
    """A DTM as the facility writes it: seconds (or minutes), with `+0800` where it sends a zone."""
    text = when.strftime("%Y%m%d%H%M" if facility.ts_minutes else "%Y%m%d%H%M%S")
    return text + "+0800" if facility.ts_zone else text


def dt(day: date) -> str:
    """A DT (YYYYMMDD), as used for PID-7 birth dates."""
    return day.strftime("%Y%m%d")


def msh(facility: Facility, when: datetime, message_type: str, control_id: str) -> str:
    """The MSH segment: MSH-3 HIS, MSH-4 code^name, MSH-9 type, MSH-10, MSH-11 P, MSH-12 version,
    MSH-15/MSH-16 the facility's acknowledgement modes, MSH-17 CHN, MSH-18 charset (empty for
    some facilities)."""
    fields = [
        "MSH", "^~\\&", "HIS", f"{facility.code}^{facility.name}", *RECEIVING, dtm(facility, when), "",
        message_type, control_id, "P", facility.version, "", "", *facility.ack_modes, "CHN", facility.msh18,
    ]
    return "|".join(fields)


def segment(name: str, *fields: str) -> str:
    """A segment from already-escaped field values (trailing empty fields dropped)."""
    values = list(fields)
    while values and values[-1] == "":
        values.pop()
    return "|".join([name, *values])


def encode(facility: Facility, segments: list[str]) -> bytes:
    """The message bytes: segments joined by the facility's terminator, in its charset."""
    term = TERMINATORS[facility.terminator]
    return b"".join(s.encode(facility.charset) + term for s in segments)
