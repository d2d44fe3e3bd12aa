"""GA/T 467 frames: ``AA AA AA 96 69`` + length (2 bytes, big-endian) + body + XOR checksum.

The length counts the body and the checksum; the checksum is the XOR of the
length bytes and the body. A command body is ``command, parameter, data``;
a response body is ``SW1 SW2 SW3, data`` where SW3 is the status.
``FrameParser`` takes bytes as they arrive, finds frames, reports bad ones
and resynchronises on the next header, so garbage on the line never wedges it.
"""

import enum
from dataclasses import dataclass
from typing import Final

from hal.errors import FrameError

HEADER: Final = b"\xaa\xaa\xaa\x96\x69"
MAX_LENGTH: Final = 0xFFFF


class Command(bytes, enum.Enum):
    """Command and parameter bytes."""

    FIND = b"\x20\x01"
    SELECT = b"\x20\x02"
    READ_BASE = b"\x30\x01"


class Status(enum.IntEnum):
    """SW3 status bytes."""

    OK = 0x90
    CARD_FOUND = 0x9F
    NO_CARD = 0x80
    SELECT_FAILED = 0x81
    READ_FAILED = 0x41
    CHECKSUM_ERROR = 0x10
    LENGTH_ERROR = 0x11
    BAD_COMMAND = 0x21
    UNAUTHORISED = 0x23
    UNKNOWN_ERROR = 0x24


def _xor(data: bytes) -> int:
    value = 0
    for byte in data:
        value ^= byte
    return value


def encode(body: bytes) -> bytes:
    """A complete frame around ``body``."""
    if not body or len(body) + 1 > MAX_LENGTH:
        raise ValueError(f"frame body of {len(body)} bytes is out of range")
    length = (len(body) + 1).to_bytes(2, "big")
    return HEADER + length + body + bytes([_xor(length + body)])


def command(cmd: Command, data: bytes = b"") -> bytes:
    """A command frame."""
    return encode(cmd.value + data)


def response(status: int, data: bytes = b"") -> bytes:
    """A response frame (SW1 = SW2 = 0)."""
    return encode(bytes([0, 0, status]) + data)


@dataclass(frozen=True)
class Reply:
    """A decoded response body."""

    status: int
    data: bytes

    @classmethod
    def from_body(cls, body: bytes) -> "Reply":
        if len(body) < 3:
            raise FrameError(f"response body of {len(body)} bytes has no status word")
        return cls(body[2], body[3:])


class FrameParser:
    """Incremental frame finder: ``feed`` bytes, get bodies and errors in arrival order."""

    def __init__(self, min_length: int = 3) -> None:
        self._buf = bytearray()
        self._min = min_length

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        """Bodies of the complete frames in ``data`` (plus what was buffered), and errors."""
        self._buf += data
        out: list[bytes | FrameError] = []
        while True:
            start = self._buf.find(HEADER)
            if start < 0:
                # keep a tail that may be the start of a header split across reads
                keep = len(HEADER) - 1
                del self._buf[: max(0, len(self._buf) - keep)]
                return out
            del self._buf[:start]
            item = self._frame_at(0)
            if item is None:
                # incomplete: a bogus header in garbage may claim a long length; if a
                # later header already holds a complete valid frame, that one is real
                later = self._valid_frame_after(1)
                if later < 0:
                    return out
                out.append(FrameError("garbage before a frame: skipped"))
                del self._buf[:later]
                continue
            if isinstance(item, FrameError):
                out.append(item)
                del self._buf[:1]
                continue
            body, end = item
            del self._buf[:end]
            out.append(body)

    def _frame_at(self, pos: int) -> tuple[bytes, int] | FrameError | None:
        """The frame starting at ``pos``: (body, end), an error, or None if incomplete."""
        if len(self._buf) < pos + len(HEADER) + 2:
            return None
        length = int.from_bytes(self._buf[pos + 5 : pos + 7], "big")
        if length < self._min:
            return FrameError(f"frame length {length} is too short")
        end = pos + len(HEADER) + 2 + length
        if len(self._buf) < end:
            return None
        frame = bytes(self._buf[pos:end])
        if _xor(frame[5:-1]) != frame[-1]:
            return FrameError("frame checksum mismatch")
        return frame[7:-1], end

    def _valid_frame_after(self, pos: int) -> int:
        """Start of the first complete, valid frame at or after ``pos`` (-1: none)."""
        while (pos := self._buf.find(HEADER, pos)) >= 0:
            if isinstance(self._frame_at(pos), tuple):
                return pos
            pos += 1
        return -1

    def clear(self) -> None:
        """Forget buffered bytes (before a new command)."""
        self._buf.clear()
