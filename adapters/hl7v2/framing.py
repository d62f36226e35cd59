"""MLLP framing on bytes (HL7 v2.5 Appendix C.4.1, Minimal Lower Layer Protocol).

A frame is ``<VT=0x0B> payload <FS=0x1C><CR=0x0D>``. `MllpDecoder` keeps partial
frames across reads, yields several frames from one read, skips junk between frames
and enforces a maximum frame size (the oversized frame is dropped and reported, the
stream resynchronises on the next start byte).

May import: the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
DEFAULT_MAX_FRAME = 10 * 1024 * 1024
HEAD_BYTES = 2048


def frame(payload: bytes) -> bytes:
    """Wrap one HL7 message (bytes as encoded) in an MLLP block."""
    return START_BLOCK + payload + END_BLOCK


@dataclass(frozen=True, slots=True)
class FrameTooLarge:
    """Marker yielded in place of a frame that exceeded the maximum size: its size in bytes
    and its first bytes (enough for the MSH, so the NAK can be addressed to the sender)."""

    size: int
    head: bytes = b""


class MllpDecoder:
    """Incremental MLLP decoder: feed bytes, get complete payloads.

    `feed(data)` returns the payloads (bytes without the block characters) completed by
    this read, in order, and `FrameTooLarge` markers for frames exceeding `max_frame`.
    Bytes outside a frame (junk) are counted in `junk_bytes` and discarded.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame < 1:
            raise ValueError("max_frame must be positive")
        self.max_frame = max_frame
        self._buf = bytearray()
        self._in_frame = False
        self._discarding = False
        self._discarded = 0
        self._head = b""
        self._tail_fs = False
        self.junk_bytes = 0

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back (0 when between frames)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | FrameTooLarge]:
        """Consume one read; return the frames it completed (oldest first)."""
        out: list[bytes | FrameTooLarge] = []
        pos, n = 0, len(data)
        while pos < n:
            if not self._in_frame:
                start = data.find(START_BLOCK, pos)
                if start < 0:
                    self.junk_bytes += n - pos
                    break
                self.junk_bytes += start - pos
                self._in_frame, self._discarding, self._discarded = True, False, 0
                self._tail_fs = False
                self._buf.clear()
                pos = start + 1
                continue
            pos = self._consume_frame(data, pos, out)
        return out

    def _consume_frame(self, data: bytes, pos: int, out: list[bytes | FrameTooLarge]) -> int:
        # An end block may straddle reads: check a FS held at the end of the buffer.
        if self._tail_fs and data[pos : pos + 1] == b"\x0d":
            if self._buf:
                del self._buf[-1]
            self._finish(out)
            return pos + 1
        end = data.find(END_BLOCK, pos)
        chunk_end = len(data) if end < 0 else end
        restart = data.find(START_BLOCK, pos, chunk_end)
        if restart >= 0:
            # A new start block inside an unterminated frame: the earlier frame is junk.
            self.junk_bytes += len(self._buf) + (restart - pos) + 1
            self._buf.clear()
            self._discarding, self._discarded, self._tail_fs = False, 0, False
            return restart + 1
        self._append(data[pos:chunk_end])
        self._tail_fs = chunk_end > pos and data[chunk_end - 1] == 0x1C
        if end < 0:
            return len(data)
        self._finish(out)
        return end + 2

    def _append(self, chunk: bytes) -> None:
        if self._discarding:
            self._discarded += len(chunk)
            return
        self._buf += chunk
        # Keep one extra byte: a trailing FS may be the first half of the end block.
        if len(self._buf) > self.max_frame + 1:
            self._discarding = True
            self._discarded = len(self._buf)
            self._head = bytes(self._buf[:HEAD_BYTES])
            self._buf.clear()

    def _finish(self, out: list[bytes | FrameTooLarge]) -> None:
        if self._discarding or len(self._buf) > self.max_frame:
            out.append(
                FrameTooLarge(self._discarded or len(self._buf), self._head or bytes(self._buf[:HEAD_BYTES]))
            )
        else:
            out.append(bytes(self._buf))
        self._buf.clear()
        self._in_frame, self._discarding, self._discarded = False, False, 0
        self._tail_fs, self._head = False, b""
