"""Character set handling before splitting (HL7 v2.5 §2.15.9.18 MSH-18, Table 0211).

MSH-18 is read from the raw bytes without decoding the message with a guessed codec
(only CR/LF, which never occur inside a GB18030 or UTF-8 character, split the header
segment; the header is then decoded strictly as UTF-8 or else as GB18030, so a GBK
trail byte equal to ``|`` (0x7C) stays inside its character). The whole message is
then decoded with the declared codec, or the sending facility's configured default when
MSH-18 is empty or wrong; what was used is always returned (never a silent guess).

May import: the standard library, `adapters.hl7v2.errors`.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from adapters.hl7v2.errors import DATA_TYPE_ERROR, ErrLocation, Hl7ContentError

BOM_UTF8 = codecs.BOM_UTF8
_SEGMENT_END = re.compile(rb"\r\n|\r|\n")

# HL7 Table 0211 (and names seen in the field) → Python codec.
_CODECS = {
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "UTF8": "utf-8",
    "UNICODE": "utf-8",
    "GB 18030-2000": "gb18030",
    "GB18030": "gb18030",
    "GB 18030": "gb18030",
    "GB18030-2000": "gb18030",
    "GB18030-2005": "gb18030",
    "GB 18030-2005": "gb18030",
    "GBK": "gb18030",
    "GB2312": "gb18030",
    "GB 2312": "gb18030",
    "CP936": "gb18030",
    "ASCII": "ascii",
    "US-ASCII": "ascii",
    "8859/1": "latin-1",
    "ISO-8859-1": "latin-1",
}


def python_codec(msh18: str | None) -> str | None:
    """Python codec for an MSH-18 value (first repetition), or None when empty/unknown."""
    if not msh18:
        return None
    name = msh18.split("~")[0].strip().upper()
    return _CODECS.get(name) or _CODECS.get(name.replace("_", " "))


def strip_bom(raw: bytes) -> bytes:
    """Raw bytes without a leading UTF-8 byte-order mark or leading blank lines."""
    if raw.startswith(BOM_UTF8):
        raw = raw[len(BOM_UTF8) :]
    return raw.lstrip(b"\r\n \t")


def header_text(raw: bytes) -> str:
    """The first segment decoded ASCII-safely (strict UTF-8, else GB18030 with replacement)."""
    raw = strip_bom(raw)
    m = _SEGMENT_END.search(raw)
    first = raw if m is None else raw[: m.start()]
    try:
        return first.decode("utf-8")
    except UnicodeDecodeError:
        return first.decode("gb18030", errors="replace")


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded message: text, the codec used, the MSH-18 as declared, and a note when
    the codec was not the declared one (recorded in the archive and as an ACK warning)."""

    text: str
    codec: str
    declared: str | None
    note: str | None = None


def decode_message(raw: bytes, declared: str | None, sender_default: str | None = None) -> Decoded:
    """Decode a whole message before splitting.

    Order: the MSH-18 codec; then the sender's configured default (a Python codec name
    or an MSH-18 name); then, only when MSH-18 is empty, UTF-8 and GB18030 in that order.
    A declared but unknown or undecodable charset falls back to the sender default only.

    Raises: Hl7ContentError (102, location MSH-18) when no candidate decodes the bytes.
    """
    body = strip_bom(raw)
    declared_codec = python_codec(declared)
    default_codec = python_codec(sender_default) or (_normalise(sender_default) if sender_default else None)
    candidates: list[tuple[str, str]] = []
    if declared_codec:
        candidates.append((declared_codec, "declared in MSH-18"))
    if default_codec:
        candidates.append((default_codec, "sending facility default"))
    if not declared:
        candidates += [("utf-8", "MSH-18 empty; detected"), ("gb18030", "MSH-18 empty; detected")]
    tried: list[str] = []
    for codec, why in candidates:
        if codec in tried:
            continue
        tried.append(codec)
        try:
            text = body.decode(codec)
        except UnicodeDecodeError:
            continue
        note = None if why == "declared in MSH-18" else f"{why}: decoded as {codec}"
        if declared and not declared_codec:
            note = f"MSH-18 {declared!r} not supported; {note}"
        elif declared and codec != declared_codec:
            note = f"bytes not valid {declared!r}; {note}"
        return Decoded(text, codec, declared, note)
    what = f"declared {declared!r}" if declared else "no MSH-18"
    raise Hl7ContentError(
        DATA_TYPE_ERROR,
        f"message bytes cannot be decoded ({what}; tried {', '.join(tried) or 'nothing'})",
        ErrLocation("MSH", 1, 18),
    )


def encode_like(text: str, codec: str) -> bytes:
    """Encode an outbound message (an ACK) in the inbound message's codec.

    Characters the codec cannot carry are replaced (``?``) rather than raising: an ACK
    must always be sendable."""
    return text.encode(codec, errors="replace")


def _normalise(name: str) -> str | None:
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None
