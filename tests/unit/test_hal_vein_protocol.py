"""Vein-module packets and their parser (incl. hypothesis fuzzing)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hal.errors import FrameError
from hal.vein.protocol import (
    HOST,
    MODULE,
    PACKET_BYTES,
    Chunk,
    Cmd,
    Packet,
    PacketParser,
    Result,
    reply,
    request,
)


def test_packets_are_fixed_size_with_a_sum_checksum() -> None:
    raw = request(Cmd.CAPTURE)
    assert len(raw) == PACKET_BYTES
    assert raw[:2] == HOST
    assert raw[22:24] == (sum(raw[:22]) & 0xFFFF).to_bytes(2, "little")


def test_reply_and_chunk_round_trip() -> None:
    stream = reply(Cmd.READ_IMAGE, Result.OK) + Chunk(bytes(range(256)) * 3).encode()
    out = PacketParser(MODULE).feed(stream)
    assert out == [Packet(MODULE, Cmd.READ_IMAGE, Result.OK, b""), Chunk(bytes(range(256)) * 3)]


def test_host_parser_ignores_module_packets() -> None:
    assert PacketParser(HOST).feed(reply(Cmd.CONNECT, Result.OK)) == []


def test_bad_checksum_reported_then_resync() -> None:
    good = reply(Cmd.FINGER_STATUS, Result.OK, b"\x01")
    bad = good[:-1] + bytes([good[-1] ^ 1])
    out = PacketParser(MODULE).feed(bad + b"\x00\xff" + good)
    assert isinstance(out[0], FrameError)
    assert out[-1] == Packet(MODULE, Cmd.FINGER_STATUS, Result.OK, b"\x01")


def test_data_field_limits() -> None:
    with pytest.raises(ValueError):
        request(Cmd.CONNECT, bytes(17))
    with pytest.raises(ValueError):
        Chunk(b"").encode()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_random_bytes_never_crash(chunks: list[bytes]) -> None:
    parser = PacketParser(MODULE)
    for chunk in chunks:
        for item in parser.feed(chunk):
            assert isinstance(item, Packet | Chunk | FrameError)


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=60), data=st.binary(max_size=16), split=st.integers(1, 30))
def test_packet_after_random_garbage_is_recovered(garbage: bytes, data: bytes, split: int) -> None:
    packet = reply(Cmd.CAPTURE, Result.OK, data)
    stream = garbage + packet + packet
    parser = PacketParser(MODULE)
    out: list[Packet | Chunk | FrameError] = []
    for i in range(0, len(stream), split):
        out += parser.feed(stream[i : i + split])
    assert out[-1] == Packet(MODULE, Cmd.CAPTURE, Result.OK, data)
