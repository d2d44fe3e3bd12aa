"""Vein-module emulator: serves finger images over a pty, speaking ``hal.vein.protocol``.

Driven from the device's side: ``place(image)`` puts a finger on, ``lift()``
takes it off; ``faults.inject(...)`` adds checksum errors, garbage, silent
drops and (``delay=``) slow replies.
"""

import logging
import os

import numpy as np

from hal.emulators.faults import Faults
from hal.emulators.pty import PtyPeer
from hal.errors import FrameError
from hal.vein import has_vein_pattern
from hal.vein.protocol import HOST, MAX_CHUNK, Chunk, Cmd, Packet, PacketParser, Result, reply

log = logging.getLogger(__name__)


class VeinModuleEmulator(PtyPeer):
    """A vein module on a pty with a nominal sensor size of ``width`` x ``height``."""

    firmware = b"EMU1"

    def __init__(self, width: int = 96, height: int = 170, pace_baud: int | None = None) -> None:
        super().__init__(pace_baud)
        self.width, self.height = width, height
        self.faults = Faults("checksum", "garbage", "silent")
        self.commands: list[str] = []
        self._finger: np.ndarray | None = None
        self._captured = False
        self._image: bytes | None = None
        self._parser = PacketParser(HOST)

    def place(self, image: np.ndarray) -> None:
        """Put a finger whose NIR image is ``image`` (uint8, 2-D) on the sensor."""
        if image.ndim != 2 or image.dtype != np.uint8:
            raise ValueError("a vein image is a 2-D uint8 array")
        with self._lock:
            self._finger, self._captured, self._image = image.copy(), False, None

    def lift(self) -> None:
        """Take the finger off."""
        with self._lock:
            self._finger, self._captured, self._image = None, False, None

    def handle(self, data: bytes) -> None:
        for item in self._parser.feed(data):
            if isinstance(item, FrameError):
                self.commands.append("bad-packet")
                self._send(reply(0, Result.CHECKSUM_ERROR))
            elif isinstance(item, Packet):
                self._command(item)

    def _command(self, packet: Packet) -> None:
        try:
            cmd = Cmd(packet.command)
        except ValueError:
            self.commands.append(f"{packet.command:#04x}")
            self._send(reply(packet.command, Result.BAD_COMMAND))
            return
        self.commands.append(cmd.name)
        if cmd is Cmd.CONNECT:
            size = self.width.to_bytes(2, "little") + self.height.to_bytes(2, "little")
            self._send(reply(cmd, Result.OK, self.firmware + size))
        elif cmd is Cmd.FINGER_STATUS:
            self._send(reply(cmd, Result.OK, bytes([self._finger is not None])))
        elif cmd is Cmd.CAPTURE:
            self._capture()
        elif cmd is Cmd.IMAGE_INFO:
            self._send(self._info(cmd))
        else:
            self._read(packet.data)

    def _capture(self) -> None:
        finger = self._finger
        if finger is None:
            self._send(reply(Cmd.CAPTURE, Result.PLACE_FINGER))
        elif self._captured:
            self._send(reply(Cmd.CAPTURE, Result.RELEASE_FINGER))
        elif not has_vein_pattern(finger):
            self._send(reply(Cmd.CAPTURE, Result.NO_VEIN))
        else:
            self._captured = True
            self._image = finger.tobytes()
            self._send(self._info(Cmd.CAPTURE))

    def _info(self, cmd: Cmd) -> bytes:
        """Reply with the size of the buffered image (``NO_IMAGE`` when there is none)."""
        if self._image is None or self._finger is None:
            return reply(cmd, Result.NO_IMAGE)
        height, width = self._finger.shape
        size = len(self._image).to_bytes(4, "little")
        return reply(
            cmd, Result.OK, width.to_bytes(2, "little") + height.to_bytes(2, "little") + size
        )

    def _read(self, args: bytes) -> None:
        offset = int.from_bytes(args[0:4], "little")
        length = int.from_bytes(args[4:6], "little")
        image = self._image
        if image is None:
            self._send(reply(Cmd.READ_IMAGE, Result.NO_IMAGE))
        elif len(args) != 6 or not 1 <= length <= MAX_CHUNK or offset + length > len(image):
            self._send(reply(Cmd.READ_IMAGE, Result.LENGTH_ERROR))
        else:
            part = Chunk(image[offset : offset + length]).encode()
            self._send(reply(Cmd.READ_IMAGE, Result.OK) + part)

    def _send(self, data: bytes) -> None:
        if self.faults.delay and self.stopped.wait(self.faults.delay):
            return
        if self.faults.take("silent"):
            return
        if self.faults.take("checksum"):
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        if self.faults.take("garbage"):
            data = os.urandom(13) + data
        self.send(data)
