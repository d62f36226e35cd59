"""HL7 batch files (HL7 v2.5 §2.10.3: FHS/BHS … BTS/FTS) and multi-message files → messages.

Works on bytes so each message keeps its own encoding (CR/LF never occur inside a GB18030
or UTF-8 character).

May import: the standard library.
"""

from __future__ import annotations

import re

_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n|$)")
_ENVELOPE = (b"FHS", b"BHS", b"BTS", b"FTS")


def split_batch(data: bytes) -> list[bytes]:
    """The messages in a file: one per MSH, batch envelope segments dropped, each message's
    own terminators kept. A file without MSH is returned whole (so it still gets a NAK)."""
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    messages: list[bytearray] = []
    current: bytearray | None = None
    for m in _LINE.finditer(body):
        line = m.group(0)
        if not line:
            continue
        if line[:3] in _ENVELOPE:
            current = None
            continue
        if line.startswith(b"MSH"):
            current = bytearray()
            messages.append(current)
        if current is None:
            if not line.strip():
                continue
            current = bytearray()
            messages.append(current)
        current += line
    out = [bytes(m) for m in messages if m.strip()]
    return out or ([data] if data.strip() else [])
