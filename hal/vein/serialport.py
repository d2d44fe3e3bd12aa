"""A finger-vein module on a serial line (pyserial), speaking ``hal.vein.protocol``."""

import logging
import time
from pathlib import Path

import numpy as np

from hal.errors import BackendUnavailableError, FrameError, VeinSensorError
from hal.serialline import drain
from hal.vein import Prompt, VeinSensor
from hal.vein.protocol import MAX_CHUNK, MODULE, Chunk, Cmd, Packet, PacketParser, Result, request

log = logging.getLogger(__name__)

_PROMPTS = {
    Result.PLACE_FINGER: Prompt.PLACE_FINGER,
    Result.RELEASE_FINGER: Prompt.RELEASE_FINGER,
    Result.NO_VEIN: Prompt.NO_VEIN,
}


class _RetryError(Exception):
    """One exchange failed in a way that a retry may fix."""


class SerialVeinSensor(VeinSensor):
    """Vein module on ``port``; connects on construction and knows the image size."""

    def __init__(
        self, port: str, *, baudrate: int = 115200, timeout: float = 1.0, retries: int = 3
    ) -> None:
        try:
            import serial
        except ImportError:
            raise BackendUnavailableError(
                "vein backend 'serial' needs the Python package pyserial "
                "(pip install 'lifecert[edge]')"
            ) from None
        if "://" not in port and not Path(port).exists():
            raise BackendUnavailableError(
                f"vein backend 'serial': serial device {port} does not exist "
                "(check the cable, the udev rule and hal.vein.port)"
            )
        try:
            self._serial = serial.serial_for_url(port, baudrate=baudrate, timeout=0.02)
        except (serial.SerialException, OSError) as exc:
            raise BackendUnavailableError(
                f"vein backend 'serial': cannot open {port}: {exc} "
                "(is the service user in the 'dialout' group?)"
            ) from None
        self.port = port
        self.timeout = timeout
        self.retries = retries
        self.attempts = 0
        self._parser = PacketParser(MODULE)
        try:
            info = self._call(Cmd.CONNECT)
        except VeinSensorError:
            self._serial.close()
            raise
        if info.status != Result.OK or len(info.data) < 8:
            self._serial.close()
            raise VeinSensorError(f"vein module on {port} refused to connect ({info.status:#04x})")
        self.firmware = info.data[:4].decode("ascii", "replace")
        self.width = int.from_bytes(info.data[4:6], "little")
        self.height = int.from_bytes(info.data[6:8], "little")
        log.info(
            "vein module on %s: firmware %s, %dx%d", port, self.firmware, self.width, self.height
        )

    def _close(self) -> None:
        self._serial.close()

    def _read_items(
        self, items: list[Packet | Chunk], want: int, deadline: float
    ) -> list[Packet | Chunk]:
        """``items`` extended with parsed packets until there are ``want`` of them."""
        while len(items) < want:
            if time.monotonic() > deadline:
                raise _RetryError(f"no reply within {self.timeout:.1f} s")
            chunk = self._serial.read(max(1, self._serial.in_waiting))
            parsed = self._parser.feed(chunk)
            good = [item for item in parsed if not isinstance(item, FrameError)]
            if parsed and not good:  # only broken packets: the reply was damaged
                raise _RetryError(str(parsed[0]))
            items += good
        return items

    def _exchange(self, cmd: Cmd, data: bytes, with_chunk: bool) -> list[Packet | Chunk]:
        self._serial.reset_input_buffer()
        self._parser.clear()
        self._serial.write(request(cmd, data))
        deadline = time.monotonic() + self.timeout
        items = self._read_items([], 1, deadline)
        head = items[0]
        if not isinstance(head, Packet) or head.command != cmd:
            raise _RetryError(f"unexpected reply to {cmd.name}")
        if head.status in (Result.CHECKSUM_ERROR, Result.LENGTH_ERROR):
            raise _RetryError(f"module reports status {head.status:#04x} for our command")
        if with_chunk and head.status == Result.OK:
            items = self._read_items(items, 2, deadline)
        return items

    def _call(self, cmd: Cmd, data: bytes = b"", with_chunk: bool = False) -> Packet:
        """One command with retries (``self.attempts`` tells how many it took)."""
        last = ""
        for attempt in range(1, self.retries + 1):
            self.attempts = attempt
            try:
                if attempt > 1:
                    drain(self._serial)
                items = self._exchange(cmd, data, with_chunk)
            except _RetryError as exc:
                last = str(exc)
                log.info("%s attempt %d/%d failed: %s", cmd.name, attempt, self.retries, last)
                continue
            except OSError as exc:
                raise VeinSensorError(f"serial line {self.port} failed: {exc}") from None
            head = items[0]
            assert isinstance(head, Packet)
            if with_chunk and head.status == Result.OK:
                chunk = items[1]
                if not isinstance(chunk, Chunk):
                    last = "image data missing"
                    continue
                return Packet(head.prefix, head.command, head.status, chunk.payload)
            return head
        raise VeinSensorError(f"vein module on {self.port}: {cmd.name} failed: {last}")

    def finger_present(self) -> bool:
        reply = self._call(Cmd.FINGER_STATUS)
        return bool(reply.data[:1] == b"\x01")

    def _try_capture(self) -> np.ndarray | Prompt:
        reply = self._call(Cmd.CAPTURE)
        if reply.status == Result.RELEASE_FINGER and self.attempts > 1:
            # our first CAPTURE may have succeeded with its reply lost: fetch that image
            info = self._call(Cmd.IMAGE_INFO)
            reply = info if info.status == Result.OK else reply
        if reply.status in _PROMPTS:
            return _PROMPTS[Result(reply.status)]
        if reply.status != Result.OK or len(reply.data) < 8:
            raise VeinSensorError(f"capture failed with status {reply.status:#04x}")
        width = int.from_bytes(reply.data[0:2], "little")
        height = int.from_bytes(reply.data[2:4], "little")
        size = int.from_bytes(reply.data[4:8], "little")
        if size != width * height or size == 0:
            raise VeinSensorError(f"capture reports {size} bytes for {width}x{height}")
        image = bytearray()
        while len(image) < size:
            want = min(MAX_CHUNK, size - len(image))
            args = len(image).to_bytes(4, "little") + want.to_bytes(2, "little")
            part = self._call(Cmd.READ_IMAGE, args, with_chunk=True)
            if part.status != Result.OK or len(part.data) != want:
                raise VeinSensorError(f"image read at {len(image)} failed ({part.status:#04x})")
            image += part.data
        return np.frombuffer(bytes(image), dtype=np.uint8).reshape(height, width).copy()
