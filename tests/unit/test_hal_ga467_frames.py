"""GA/T 467 frame encoding and the resynchronising parser (incl. hypothesis fuzzing)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hal.card.ga467_frames import HEADER, Command, FrameParser, Reply, Status, command, response
from hal.errors import FrameError


def test_find_command_is_the_documented_bytes() -> None:
    # length 3 (cmd, param, checksum); checksum = 00 ^ 03 ^ 20 ^ 01 = 0x22
    assert command(Command.FIND) == bytes.fromhex("AAAAAA9669 0003 2001 22")


def test_response_round_trip() -> None:
    frame = response(Status.OK, b"\x01\x02\x03")
    (body,) = FrameParser().feed(frame)
    assert Reply.from_body(body) == Reply(Status.OK, b"\x01\x02\x03")


def test_frames_split_across_reads_are_reassembled() -> None:
    frame = response(Status.CARD_FOUND, bytes(4))
    parser = FrameParser()
    out = []
    for byte in frame:
        out += parser.feed(bytes([byte]))
    assert out == [frame[7:-1]]


def test_bad_checksum_is_reported_and_the_next_frame_still_found() -> None:
    good = response(Status.OK, b"abc")
    bad = good[:-1] + bytes([good[-1] ^ 0x5A])
    out = FrameParser().feed(bad + b"\x00\x13garbage" + good)
    assert isinstance(out[0], FrameError)
    assert out[-1] == good[7:-1]


def test_garbage_that_looks_like_a_header_start_does_not_hide_a_frame() -> None:
    good = response(Status.NO_CARD)
    out = FrameParser().feed(b"\xaa\xaa\x96" + b"\xaa" + good)
    assert out == [good[7:-1]]


def test_too_short_length_is_an_error_not_a_hang() -> None:
    out = FrameParser().feed(HEADER + b"\x00\x01\x00" + response(Status.OK))
    assert isinstance(out[0], FrameError)
    assert out[-1] == bytes([0, 0, Status.OK])


def test_reply_without_status_word_is_rejected() -> None:
    with pytest.raises(FrameError):
        Reply.from_body(b"\x00\x00")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_random_bytes_never_crash(chunks: list[bytes]) -> None:
    parser = FrameParser()
    for chunk in chunks:
        for item in parser.feed(chunk):
            assert isinstance(item, bytes | FrameError)


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=80), data=st.binary(max_size=300), split=st.integers(1, 50))
def test_frame_after_random_garbage_is_recovered(garbage: bytes, data: bytes, split: int) -> None:
    """Whatever precedes them, the frames are recovered (the first one may be sacrificed)."""
    frame = response(Status.OK, data)
    parser = FrameParser()
    stream = garbage + frame + frame
    out: list[bytes | FrameError] = []
    for i in range(0, len(stream), split):
        out += parser.feed(stream[i : i + split])
    assert out[-1] == frame[7:-1]


@settings(max_examples=200, deadline=None)
@given(data=st.binary(min_size=1, max_size=200), flip=st.integers(0, 10_000))
def test_a_corrupted_frame_is_never_accepted(data: bytes, flip: int) -> None:
    frame = bytearray(response(Status.OK, data))
    pos = len(HEADER) + 2 + flip % (len(frame) - len(HEADER) - 2)
    frame[pos] ^= 0x01
    out = FrameParser().feed(bytes(frame) + response(Status.NO_CARD))
    assert bytes([0, 0, Status.OK]) + data not in out
    assert out[-1] == bytes([0, 0, Status.NO_CARD])
