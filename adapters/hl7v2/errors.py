"""HL7 v2 processing errors carrying their acknowledgement (HL7 v2.5 §2.9, Table 0357).

`Hl7ContentError` → AE (codes 100–104, with an ERR-2 location); `Hl7Rejection` → AR
(codes 200–207). Both are domain errors (`ehr_store` kinds) so an HTTP caller can map
them like any other.

May import: the standard library, `ehr_store` (public API).
"""

from __future__ import annotations

from dataclasses import dataclass

from ehr_store import NotSupported, Unprocessable

# HL7 Table 0357 message error condition codes.
SEGMENT_SEQUENCE_ERROR = "100"
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
VALUE_TOO_LONG = "104"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_EVENT_CODE = "201"
UNSUPPORTED_PROCESSING_ID = "202"
UNSUPPORTED_VERSION_ID = "203"
UNKNOWN_KEY_IDENTIFIER = "204"
DUPLICATE_KEY_IDENTIFIER = "205"
APPLICATION_RECORD_LOCKED = "206"
APPLICATION_INTERNAL_ERROR = "207"

TABLE_0357_TEXT = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "104": "Value too long",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}


@dataclass(frozen=True, slots=True)
class ErrLocation:
    """ERR-2 error location (ERL): segment id, sequence (1-based), field, repetition, component."""

    segment: str
    sequence: int = 1
    field: int | None = None
    repetition: int | None = None
    component: int | None = None

    def fhir_expression(self) -> str:
        """The location in HL7's own `PID[1]-7.1` notation (used in diagnostics)."""
        out = f"{self.segment}[{self.sequence}]"
        if self.field is not None:
            out += f"-{self.field}"
            if self.component is not None:
                out += f".{self.component}"
        return out


class Hl7Error(Exception):
    """Base: a message that cannot be processed as sent. `code` is from Table 0357."""

    ack_code = "AE"

    def __init__(self, code: str, text: str, location: ErrLocation | None = None) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.location = location

    def domain_error(self) -> Unprocessable | NotSupported:
        """The equivalent `ehr_store` domain error (for HTTP callers)."""
        expr = (self.location.fhir_expression(),) if self.location else ()
        if self.ack_code == "AR":
            return NotSupported(self.text, expression=expr)
        return Unprocessable(self.text, expression=expr)


class Hl7ContentError(Hl7Error):
    """Content error → AE (Table 0357 codes 100–104)."""

    ack_code = "AE"


class Hl7Rejection(Hl7Error):
    """Rejection → AR (Table 0357 codes 200–207)."""

    ack_code = "AR"
