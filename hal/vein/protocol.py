"""Vein-module packets (our documented protocol, in the style of common vein modules).

Command / response packet, always 24 bytes::

    0-1   prefix      55 AA (host -> module) or AA 55 (module -> host)
    2     address     00
    3     command
    4     status      00 in commands; the result code in responses
    5     length      meaningful bytes in the data field (0..16)
    6-21  data        zero-padded
    22-23 checksum    sum of bytes 0-21 modulo 65536, little-endian

Data packet (image chunks, module -> host), after a READ_IMAGE response::

    0-1   prefix      A5 5A
    2-3   length      payload bytes, little-endian (1..4096)
    4..   payload
    last2 checksum    sum of all preceding bytes of the packet modulo 65536, little-endian

``PacketParser`` finds packets in a byte stream, reports bad ones and
resynchronises on the next prefix.
"""

import enum
from dataclasses import dataclass
from typing import Final

from hal.errors import FrameError

HOST: Final = b"\x55\xaa"
MODULE: Final = b"\xaa\x55"
DATA: Final = b"\xa5\x5a"
PACKET_BYTES: Final = 24
DATA_FIELD: Final = 16
MAX_CHUNK: Final = 4096


class Cmd(enum.IntEnum):
    """Command codes."""

    CONNECT = 0x01
    FINGER_STATUS = 0x02
    CAPTURE = 0x03
    READ_IMAGE = 0x04
    IMAGE_INFO = 0x05


class Result(enum.IntEnum):
    """Response status codes."""

    OK = 0x00
    PLACE_FINGER = 0x01
    RELEASE_FINGER = 0x02
    NO_VEIN = 0x03
    NO_IMAGE = 0x05
    CHECKSUM_ERROR = 0x10
    LENGTH_ERROR = 0x11
    BAD_COMMAND = 0x12


def _sum16(data: bytes) -> bytes:
    return (sum(data) & 0xFFFF).to_bytes(2, "little")


@dataclass(frozen=True)
class Packet:
    """A command or response packet."""

    prefix: bytes
    command: int
    status: int = 0
    data: bytes = b""

    def encode(self) -> bytes:
        if len(self.data) > DATA_FIELD:
            raise ValueError(f"packet data of {len(self.data)} bytes exceeds {DATA_FIELD}")
        head = self.prefix + bytes([0, self.command, self.status, len(self.data)])
        body = head + self.data.ljust(DATA_FIELD, b"\x00")
        return body + _sum16(body)


@dataclass(frozen=True)
class Chunk:
    """A data packet."""

    payload: bytes

    def encode(self) -> bytes:
        if not 1 <= len(self.payload) <= MAX_CHUNK:
            raise ValueError(f"data packet of {len(self.payload)} bytes is out of range")
        body = DATA + len(self.payload).to_bytes(2, "little") + self.payload
        return body + _sum16(body)


def request(cmd: Cmd, data: bytes = b"") -> bytes:
    """Host -> module packet."""
    return Packet(HOST, cmd, 0, data).encode()


def reply(cmd: int, status: int, data: bytes = b"") -> bytes:
    """Module -> host packet."""
    return Packet(MODULE, cmd, status, data).encode()


class PacketParser:
    """Incremental parser for packets whose prefix is ``expect`` plus data packets."""

    def __init__(self, expect: bytes) -> None:
        self._prefixes = (expect, DATA)
        self._buf = bytearray()

    def _next_prefix(self) -> int:
        found = [i for i in (self._buf.find(p) for p in self._prefixes) if i >= 0]
        return min(found) if found else -1

    def feed(self, data: bytes) -> list[Packet | Chunk | FrameError]:
        """Packets completed by ``data`` (and buffered bytes), and errors, in order."""
        self._buf += data
        out: list[Packet | Chunk | FrameError] = []
        while True:
            start = self._next_prefix()
            if start < 0:
                del self._buf[: max(0, len(self._buf) - 1)]
                return out
            del self._buf[:start]
            item = self._parse_one()
            if item is None:
                return out
            out.append(item)

    def _parse_one(self) -> Packet | Chunk | FrameError | None:
        """One packet at the buffer start; None when more bytes are needed."""
        buf = self._buf
        if buf[:2] == DATA:
            if len(buf) < 4:
                return None
            size = int.from_bytes(buf[2:4], "little")
            if not 1 <= size <= MAX_CHUNK:
                del buf[:1]
                return FrameError(f"data packet length {size} is out of range")
            end = 4 + size + 2
            if len(buf) < end:
                return None
            if _sum16(bytes(buf[: end - 2])) != buf[end - 2 : end]:
                del buf[:1]
                return FrameError("data packet checksum mismatch")
            chunk = Chunk(bytes(buf[4 : end - 2]))
            del buf[:end]
            return chunk
        if len(buf) < PACKET_BYTES:
            return None
        if buf[5] > DATA_FIELD:
            del buf[:1]
            return FrameError(f"packet data length {buf[5]} exceeds {DATA_FIELD}")
        if _sum16(bytes(buf[:22])) != buf[22:24]:
            del buf[:1]
            return FrameError("packet checksum mismatch")
        packet = Packet(bytes(buf[:2]), buf[3], buf[4], bytes(buf[6 : 6 + buf[5]]))
        del buf[:PACKET_BYTES]
        return packet

    def clear(self) -> None:
        """Forget buffered bytes."""
        self._buf.clear()
