"""Our own fast, tolerant ER7 splitter (HL7 v2.5 §2.5–2.7 message construction rules).

Accepts ``\\r``, ``\\n`` and ``\\r\\n`` segment terminators, MSH-2 with 4 or 5 encoding
characters (v2.7 truncation character), keeps every segment including Z-segments and
unknown ones, and decodes escape sequences (§2.7.4: ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\Xhh\\
\\.br\\``) only in leaf values. ``""`` (explicit null, §2.5.3) is kept distinct from empty.

Fields are numbered as in the standard: for MSH, field 1 is the field separator and
field 2 the encoding characters.

May import: the standard library, `adapters.hl7v2.errors`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from adapters.hl7v2.errors import SEGMENT_SEQUENCE_ERROR, ErrLocation, Hl7ContentError

NULL = '""'
"""HL7 explicit null: the receiver shall delete the value (HL7 v2.5 §2.5.3)."""

_SEGMENT_END = re.compile(r"\r\n|\r|\n")
_SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{2}$")


@dataclass(frozen=True, slots=True)
class Encoding:
    """Delimiters from MSH-1/MSH-2 (§2.5.4)."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str | None = None

    @property
    def msh2(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent + (self.truncation or "")


def unescape(value: str, enc: Encoding) -> str:
    """Decode HL7 escape sequences in one leaf value (§2.7.4). Formatting escapes
    (``\\H\\ \\N\\ \\.sp\\ \\.in\\``…) are dropped except ``\\.br\\`` (a line break);
    an unknown or unterminated escape is kept literally."""
    esc = enc.escape
    if not esc or esc not in value:
        return value
    out: list[str] = []
    i, n = 0, len(value)
    while i < n:
        ch = value[i]
        if ch != esc:
            out.append(ch)
            i += 1
            continue
        j = value.find(esc, i + 1)
        if j < 0:
            out.append(value[i:])
            break
        out.append(_escape_value(value[i + 1 : j], enc, value[i : j + 1]))
        i = j + 1
    return "".join(out)


def _escape_value(code: str, enc: Encoding, literal: str) -> str:
    simple = {"F": enc.field, "S": enc.component, "T": enc.subcomponent, "R": enc.repetition, "E": enc.escape}
    if code in simple:
        return simple[code]
    if code == "P" and enc.truncation:
        return enc.truncation
    if code == ".br":
        return "\n"
    if code.startswith("X") and len(code) > 1 and len(code) % 2 == 1:
        try:
            data = bytes.fromhex(code[1:])
        except ValueError:
            return literal
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("latin-1")
    if code in ("H", "N") or code.startswith((".sp", ".in", ".ti", ".fi", ".nf", ".ce", "C", "M", "Z")):
        return ""
    return literal


class Segment:
    """One segment: its id and raw (still escaped) fields; `fields[0]` is the id."""

    __slots__ = ("_split", "enc", "fields", "name", "sequence")

    def __init__(self, name: str, fields: list[str], enc: Encoding, sequence: int) -> None:
        self.name = name
        self.fields = fields
        self.enc = enc
        self.sequence = sequence
        self._split: dict[int, list[list[list[str]]]] = {}  # field n split, leaves still escaped

    def _leaves(self, n: int) -> list[list[list[str]]]:
        """Field n split into repetitions → components → subcomponents (escaped), once."""
        found = self._split.get(n)
        if found is None:
            raw = self.raw(n)
            enc = self.enc
            sub, component = enc.subcomponent, enc.component
            found = [[c.split(sub) for c in rep.split(component)] for rep in raw.split(enc.repetition)]
            self._split[n] = found
        return found

    def raw(self, n: int) -> str:
        """Field n as sent (escaped); "" when absent."""
        return self.fields[n] if n < len(self.fields) else ""

    def is_null(self, n: int) -> bool:
        """True when field n is the explicit null ``""``."""
        return self.raw(n) == NULL

    def repetitions(self, n: int) -> list[list[list[str]]]:
        """Field n as repetitions → components → subcomponents, unescaped; [] when empty.
        MSH-1 and MSH-2 are returned verbatim."""
        raw = self.raw(n)
        if not raw:
            return []
        if self.name == "MSH" and n <= 2:
            return [[[raw]]]
        enc = self.enc
        leaves = self._leaves(n)
        if not enc.escape or enc.escape not in raw:  # nothing to unescape (the common case)
            return [[list(subs) for subs in rep] for rep in leaves]
        return [[[unescape(s, enc) for s in subs] for subs in rep] for rep in leaves]

    def values(self, n: int, component: int = 1) -> list[str]:
        """One component of every repetition of field n, unescaped, empty ones dropped."""
        raw = self.raw(n)
        if not raw or raw == NULL:
            return []
        count = raw.count(self.enc.repetition) + 1
        return [v for v in (self.get(n, component, repetition=i + 1) for i in range(count)) if v]

    def get(self, n: int, component: int = 1, subcomponent: int = 1, repetition: int = 1) -> str:
        """One unescaped leaf value (1-based positions); "" when absent, ``""`` when null."""
        raw = self.raw(n)
        if not raw:
            return ""
        if self.name == "MSH" and n <= 2:
            return raw
        reps = self._leaves(n)
        if repetition > len(reps):
            return ""
        comps = reps[repetition - 1]
        if component > len(comps):
            return ""
        subs = comps[component - 1]
        if subcomponent > len(subs):
            return ""
        return unescape(subs[subcomponent - 1], self.enc)

    def location(self, field: int | None = None, component: int | None = None) -> ErrLocation:
        """ERR-2 location of this segment (or one of its fields)."""
        return ErrLocation(self.name, self.sequence, field, None, component)


class Message:
    """A split message: segments in order (all kept), delimiters, and lookups."""

    __slots__ = ("enc", "segments", "text")

    def __init__(self, text: str, segments: list[Segment], enc: Encoding) -> None:
        self.text = text
        self.segments = segments
        self.enc = enc

    @property
    def msh(self) -> Segment:
        return self.segments[0]

    def all(self, name: str) -> list[Segment]:
        """Every segment with this id, in message order."""
        return [s for s in self.segments if s.name == name]

    def first(self, name: str) -> Segment | None:
        """The first segment with this id, or None."""
        for s in self.segments:
            if s.name == name:
                return s
        return None

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments)


def split_message(text: str) -> Message:
    """Split a decoded message into segments and fields.

    Raises: Hl7ContentError 100 when the first segment is not MSH, MSH-2 is malformed,
    or a segment id is not three upper-case characters (location: that segment).
    """
    lines = [ln for ln in _SEGMENT_END.split(text.lstrip("\ufeff")) if ln.strip()]
    if not lines or not lines[0].startswith("MSH") or len(lines[0]) < 8:
        raise Hl7ContentError(
            SEGMENT_SEQUENCE_ERROR, "message does not start with an MSH segment", ErrLocation("MSH", 1)
        )
    enc = _encoding(lines[0])
    segments: list[Segment] = []
    counts: dict[str, int] = {}
    for ln in lines:
        fields = ln.split(enc.field)
        name = fields[0]
        if name == "MSH":
            fields = ["MSH", enc.field, *fields[1:]]
        if not _SEGMENT_ID.match(name):
            raise Hl7ContentError(
                SEGMENT_SEQUENCE_ERROR,
                f"segment {len(segments) + 1}: id {name[:10]!r} is not three characters",
                ErrLocation(name[:3] or "???", len(segments) + 1),
            )
        counts[name] = counts.get(name, 0) + 1
        segments.append(Segment(name, fields, enc, counts[name]))
    return Message(text, segments, enc)


def _encoding(msh: str) -> Encoding:
    sep = msh[3]
    chars = msh[4:].split(sep, 1)[0]
    if len(chars) not in (4, 5) or sep in chars or len(set(chars + sep)) != len(chars) + 1:
        raise Hl7ContentError(
            SEGMENT_SEQUENCE_ERROR,
            f"MSH-2 encoding characters {chars!r} are malformed",
            ErrLocation("MSH", 1, 2),
        )
    return Encoding(sep, chars[0], chars[1], chars[2], chars[3], chars[4] if len(chars) == 5 else None)
