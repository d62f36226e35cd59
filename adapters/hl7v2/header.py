"""Tolerant MSH extraction from raw bytes (HL7 v2.5 §2.14.9 MSH).

Works on anything: a message with no MSH, a broken MSH-2 or undecodable bytes still
yields a `Header` (fields None when unknown) so the NAK can be addressed to its sender
and the archive row can name facility and control id.

May import: the standard library, `adapters.hl7v2.charset`.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.hl7v2.charset import header_text


@dataclass(frozen=True, slots=True)
class Header:
    """The MSH fields the acknowledgement and the archive need (first component where noted)."""

    field_sep: str = "|"
    encoding_chars: str = "^~\\&"
    sending_application: str | None = None  # MSH-3.1
    sending_facility: str | None = None  # MSH-4.1
    receiving_application: str | None = None  # MSH-5.1
    receiving_facility: str | None = None  # MSH-6.1
    message_type: str | None = None  # MSH-9.1
    trigger_event: str | None = None  # MSH-9.2
    control_id: str | None = None  # MSH-10
    processing_id: str | None = None  # MSH-11.1
    version: str | None = None  # MSH-12.1
    accept_ack_type: str | None = None  # MSH-15 (AL, NE, ER, SU)
    application_ack_type: str | None = None  # MSH-16
    charset: str | None = None  # MSH-18 (first repetition)
    found: bool = False
    delimiters_ok: bool = True  # MSH-1/MSH-2 usable (`delimiters_valid`); else read with ^~\&

    @property
    def message_code(self) -> str | None:
        """``ADT^A04`` style type, or None."""
        if not self.message_type:
            return None
        return f"{self.message_type}^{self.trigger_event}" if self.trigger_event else self.message_type

    @property
    def enhanced_mode(self) -> bool:
        """True when the sender asked for enhanced acknowledgement (MSH-15 or MSH-16 valued)."""
        return bool(self.accept_ack_type or self.application_ack_type)


def delimiters_valid(field_sep: str, encoding_chars: str) -> bool:
    """MSH-1 and MSH-2 (HL7 v2.5 §2.5.4, §2.14.9.2): 4 or 5 encoding characters, all of them
    and the field separator distinct, none a letter, digit or white space."""
    chars = field_sep + encoding_chars
    return (
        4 <= len(encoding_chars) <= 5
        and len(set(chars)) == len(chars)
        and not any(c.isalnum() or c.isspace() for c in chars)
    )


def read_header(raw: bytes) -> Header:
    """Extract the header from raw message bytes; never raises."""
    try:
        text = header_text(raw)
    except Exception:  # pragma: no cover - header_text decodes with replacement
        return Header()
    return parse_header_line(text)


def parse_header_line(line: str) -> Header:
    """Parse a decoded first segment; a line that is not an MSH gives an empty Header."""
    start = line.find("MSH")
    if start < 0 or len(line) < start + 8:
        return Header()
    line = line[start:]
    sep = line[3]
    parts = line.split(sep)
    enc = parts[1] if len(parts) > 1 else "^~\\&"
    ok = delimiters_valid(sep, enc)
    if not ok:  # e.g. MSH|ABCD|: read the fields with the standard characters, reject later
        enc = "^~\\&"
    comp = enc[0]
    rep = enc[1]

    def f(n: int, c: int = 1) -> str | None:
        # parts[0] is "MSH", parts[1] is MSH-2: field n is parts[n - 1].
        if n - 1 >= len(parts):
            return None
        value = parts[n - 1].split(rep)[0].split(comp)
        out = value[c - 1].strip() if c <= len(value) else ""
        return out or None

    return Header(
        field_sep=sep if ok else "|",
        encoding_chars=enc if 4 <= len(enc) <= 5 else "^~\\&",
        sending_application=f(3),
        sending_facility=f(4),
        receiving_application=f(5),
        receiving_facility=f(6),
        message_type=f(9),
        trigger_event=f(9, 2),
        control_id=f(10),
        processing_id=f(11),
        version=f(12),
        accept_ack_type=f(15),
        application_ack_type=f(16),
        charset=f(18),
        found=True,
        delimiters_ok=ok,
    )
