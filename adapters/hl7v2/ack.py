"""Acknowledgement building and reading (HL7 v2.5 §2.9 message processing rules,
§2.15.8 MSA, §2.15.5 ERR, Table 0008 acknowledgment codes, Table 0357 error codes).

ACKs are built as text with the sender's delimiters and encoded in the codec the
inbound message was decoded with, so a GB18030 sender gets a GB18030 ACK. Built
without hl7apy: this is the hot path.

May import: the standard library, `adapters.hl7v2.{charset,errors,header,er7}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from adapters.hl7v2.charset import encode_like, header_text, python_codec
from adapters.hl7v2.er7 import Encoding, unescape
from adapters.hl7v2.errors import TABLE_0357_TEXT, ErrLocation, Hl7Error
from adapters.hl7v2.header import Header, parse_header_line

AckCode = Literal["AA", "AE", "AR", "CA", "CE", "CR"]
Severity = Literal["E", "W", "I", "F"]

OUR_APPLICATION = "QYHIE"
OUR_FACILITY = "QYWJJ"
DEFAULT_VERSION = "2.5"
SUPPORTED_VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8")


@dataclass(frozen=True, slots=True)
class AckError:
    """One ERR segment: Table 0357 code, text, ERR-2 location, ERR-4 severity."""

    code: str
    text: str
    location: ErrLocation | None = None
    severity: Severity = "E"

    @classmethod
    def from_exception(cls, exc: Hl7Error) -> AckError:
        return cls(exc.code, exc.text, exc.location, "E")


def _escape(value: str, enc: Encoding) -> str:
    e = enc.escape
    out = value.replace(e, f"{e}E{e}")
    for ch, code in ((enc.field, "F"), (enc.component, "S"), (enc.subcomponent, "T"), (enc.repetition, "R")):
        out = out.replace(ch, f"{e}{code}{e}")
    return out.replace("\r", " ").replace("\n", f"{e}.br{e}")


def _encoding(header: Header) -> Encoding:
    c = header.encoding_chars
    if header.field_sep and len(c) in (4, 5) and len({header.field_sep, *c}) == len(c) + 1:
        return Encoding(header.field_sep, c[0], c[1], c[2], c[3], c[4] if len(c) == 5 else None)
    return Encoding()


def build_ack(
    header: Header,
    code: AckCode,
    *,
    control_id: str,
    now: datetime,
    errors: Sequence[AckError] = (),
    text: str | None = None,
    application: str = OUR_APPLICATION,
    facility: str = OUR_FACILITY,
) -> str:
    """The ACK message text (segments joined by CR) answering `header`'s message.

    MSH-3/4 ← inbound MSH-5/6 (else ours), MSH-5/6 ← inbound MSH-3/4, MSH-9 ``ACK^<event>^ACK``,
    MSH-11/12/18 echoed (version falls back to 2.5 when unsupported), MSA-1 `code`, MSA-2 the
    inbound MSH-10, MSA-3 `text`; one ERR per error with ERR-2 (ERL), ERR-3 (CWE from Table
    0357), ERR-4 severity and, for versions before 2.5, ERR-1 (ELD) too.
    """
    enc = _encoding(header)
    s, c = enc.field, enc.component
    version = header.version if header.version in SUPPORTED_VERSIONS else DEFAULT_VERSION
    charset = header.charset or "" if python_codec(header.charset) else ""
    msh = [
        "MSH",
        enc.msh2,
        header.receiving_application or application,
        header.receiving_facility or facility,
        header.sending_application or "",
        header.sending_facility or "",
        now.strftime("%Y%m%d%H%M%S%z"),
        "",
        f"ACK{c}{header.trigger_event}{c}ACK" if header.trigger_event else "ACK",
        control_id,
        header.processing_id or "P",
        version,
        "",
        "",
        "",
        "",
        "",
        charset or "",
    ]
    segments = [s.join(_esc_msh(msh, enc)).rstrip(s)]
    msa = ["MSA", code, _escape(header.control_id or "", enc)]
    if text:
        msa.append(_escape(text[:80], enc))
    segments.append(s.join(msa))
    legacy = version in ("2.3", "2.3.1", "2.4")
    for err in errors:
        segments.append(s.join(_err_fields(err, enc, legacy)).rstrip(s))
    return "\r".join(segments) + "\r"


def _esc_msh(fields: list[str], enc: Encoding) -> list[str]:
    # MSH-1 is implied by the separator; MSH-2 and MSH-9 are already delimited.
    return [f if i in (0, 1, 8) else _escape(f, enc) for i, f in enumerate(fields)]


def _err_fields(err: AckError, enc: Encoding, legacy: bool) -> list[str]:
    c, sc = enc.component, enc.subcomponent
    loc = err.location
    erl = ""
    if loc is not None:
        parts = [loc.segment, str(loc.sequence), _opt(loc.field), _opt(loc.repetition), _opt(loc.component)]
        erl = c.join(parts).rstrip(c)
    label = TABLE_0357_TEXT.get(err.code, "")
    cwe = c.join([err.code, _escape(label, enc), "HL70357"])
    eld = ""
    if legacy:
        eld_parts = [loc.segment, str(loc.sequence), _opt(loc.field)] if loc else ["", "", ""]
        eld = c.join([*eld_parts, sc.join([err.code, _escape(label, enc), "HL70357"])])
    return ["ERR", eld, erl, cwe, err.severity, "", "", _escape(err.text[:250], enc)]


def _opt(v: int | None) -> str:
    return "" if v is None else str(v)


def encode_ack(text: str, codec: str | None) -> bytes:
    """Encode an ACK in the inbound message's codec (UTF-8 when unknown)."""
    return encode_like(text, codec or "utf-8")


@dataclass(frozen=True, slots=True)
class AckInfo:
    """What a sender needs from an ACK: MSA-1, MSA-2, and the ERR-3 codes with texts."""

    code: str
    control_id: str | None
    errors: tuple[tuple[str, str], ...]


def read_ack(raw: bytes) -> AckInfo:
    """Read MSA and ERR from an ACK (bytes as received). Unknown shape → code ``??``."""
    header = parse_header_line(header_text(raw))
    enc = _encoding(header)
    try:
        text = raw.decode(python_codec(header.charset) or "utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
    code, cid, errors = "??", None, []
    for line in text.replace("\n", "\r").split("\r"):
        f = line.split(enc.field)
        if f[0] == "MSA" and len(f) > 1:
            code, cid = f[1], (unescape(f[2], enc) if len(f) > 2 and f[2] else None)
        elif f[0] == "ERR" and len(f) > 3:
            comps = f[3].split(enc.component)
            text = f[7] if len(f) > 7 else (comps[1] if len(comps) > 1 else "")
            errors.append((comps[0], unescape(text, enc)))
    return AckInfo(code, cid, tuple(errors))
