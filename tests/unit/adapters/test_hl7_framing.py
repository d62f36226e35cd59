"""MLLP framing (HL7 v2.5 Appendix C.4.1): partial frames, several per read, junk, max size."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.hl7v2.framing import FrameTooLarge, MllpDecoder, frame

payloads = st.lists(
    st.binary(max_size=300).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b"")), max_size=8
)


def _feed_in_chunks(decoder: MllpDecoder, data: bytes, cuts: list[int]) -> list[bytes | FrameTooLarge]:
    out: list[bytes | FrameTooLarge] = []
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for a, b in itertools.pairwise(points):
        out += decoder.feed(data[a:b])
    return out


@given(payloads, st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
@settings(max_examples=300, deadline=None)
def test_any_split_of_a_stream_gives_the_frames_in_order(messages: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame(m) for m in messages)
    decoder = MllpDecoder(max_frame=10_000)
    assert _feed_in_chunks(decoder, stream, cuts) == messages
    assert decoder.pending == 0


@given(
    payloads,
    st.binary(max_size=50).map(lambda b: b.replace(b"\x0b", b"")),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=10),
)
@settings(max_examples=200, deadline=None)
def test_junk_between_frames_is_skipped_and_counted(
    messages: list[bytes], junk: bytes, cuts: list[int]
) -> None:
    stream = junk + b"".join(frame(m) + junk for m in messages)
    decoder = MllpDecoder(max_frame=10_000)
    assert _feed_in_chunks(decoder, stream, cuts) == messages
    assert decoder.junk_bytes == len(junk) * (len(messages) + 1)


def test_several_frames_in_one_read() -> None:
    decoder = MllpDecoder()
    assert decoder.feed(frame(b"MSH|1") + frame(b"MSH|2") + frame(b"MSH|3")[:4]) == [b"MSH|1", b"MSH|2"]
    assert decoder.pending == 3
    assert decoder.feed(frame(b"MSH|3")[4:]) == [b"MSH|3"]


def test_end_block_split_between_reads() -> None:
    decoder = MllpDecoder()
    assert decoder.feed(b"\x0bMSH|x\x1c") == []
    assert decoder.feed(b"\x0d") == [b"MSH|x"]


def test_a_lone_fs_inside_a_frame_is_payload() -> None:
    decoder = MllpDecoder()
    assert decoder.feed(b"\x0bab\x1cc\x1c\x0d") == [b"ab\x1cc"]


def test_oversized_frame_is_reported_and_the_stream_recovers() -> None:
    decoder = MllpDecoder(max_frame=10)
    out = decoder.feed(frame(b"x" * 11) + frame(b"ok"))
    assert isinstance(out[0], FrameTooLarge) and out[0].size >= 11
    assert out[1:] == [b"ok"]
    # also when the big frame arrives in pieces
    out = decoder.feed(b"\x0b" + b"y" * 8) + decoder.feed(b"y" * 8) + decoder.feed(b"\x1c\x0d" + frame(b"z"))
    assert isinstance(out[0], FrameTooLarge) and out[1:] == [b"z"]


def test_a_new_start_block_abandons_an_unterminated_frame() -> None:
    decoder = MllpDecoder()
    assert decoder.feed(b"\x0bbroken" + frame(b"good")) == [b"good"]
    assert decoder.junk_bytes == len(b"\x0bbroken")
