"""Resident-ID card reader speaking GA/T 467 over a serial line (pyserial)."""

import logging
import time
from pathlib import Path

from hal.card import CardReader
from hal.card.ga467_frames import Command, FrameParser, Reply, Status, command
from hal.card.identity import TEXT_BYTES, Identity, parse_text
from hal.card.photo import WltLibrary, decode_photo
from hal.errors import BackendUnavailableError, CardReadError
from hal.serialline import drain

log = logging.getLogger(__name__)


# statuses each command can answer with; anything else is a late reply to an earlier command
_EXPECTED = {
    Command.FIND: {Status.CARD_FOUND, Status.NO_CARD},
    Command.SELECT: {Status.OK, Status.SELECT_FAILED, Status.NO_CARD},
    Command.READ_BASE: {Status.OK, Status.READ_FAILED, Status.NO_CARD},
}


def _complete(reply: Reply) -> bool:
    """Whether a basic-info reply holds a text block and the photo its header announces."""
    data = reply.data
    if len(data) < 4:
        return False
    text_len = int.from_bytes(data[0:2], "big")
    photo_len = int.from_bytes(data[2:4], "big")
    return text_len == TEXT_BYTES and len(data) == 4 + text_len + photo_len


class _RetryError(Exception):
    """One exchange failed in a way that a retry may fix."""


class GA467CardReader(CardReader):
    """GA/T 467 reader on ``port`` (a device node such as /dev/ttyUSB0, or a pty)."""

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 115200,
        timeout: float = 1.0,
        retries: int = 3,
        wlt_library: Path | None = None,
        wlt_function: str = "unpack",
    ) -> None:
        try:
            import serial
        except ImportError:
            raise BackendUnavailableError(
                "card backend 'ga467' needs the Python package pyserial "
                "(pip install 'lifecert[edge]')"
            ) from None
        if "://" not in port and not Path(port).exists():
            raise BackendUnavailableError(
                f"card backend 'ga467': serial device {port} does not exist "
                "(check the cable, the udev rule and hal.id_card.port)"
            )
        self._wlt = WltLibrary(wlt_library, wlt_function) if wlt_library else None
        try:
            self._serial = serial.serial_for_url(
                port, baudrate=baudrate, bytesize=8, parity="N", stopbits=1, timeout=0.02
            )
        except (serial.SerialException, OSError) as exc:
            raise BackendUnavailableError(
                f"card backend 'ga467': cannot open {port}: {exc} "
                "(is the service user in the 'dialout' group?)"
            ) from None
        self.port = port
        self.timeout = timeout
        self.retries = retries
        self._parser = FrameParser()

    def _close(self) -> None:
        self._serial.close()

    def _exchange(self, cmd: Command, data: bytes = b"") -> Reply:
        """Send one command and return the first well-formed reply; ``_RetryError`` otherwise."""
        self._serial.reset_input_buffer()
        self._parser.clear()
        self._serial.write(command(cmd, data))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            chunk = self._serial.read(max(1, self._serial.in_waiting))
            items = self._parser.feed(chunk)
            bodies = [item for item in items if isinstance(item, bytes)]
            if not bodies:
                if items:  # only broken frames: our reply was damaged
                    raise _RetryError(str(items[0]))
                continue
            for item in bodies:
                reply = Reply.from_body(item)
                if reply.status in (Status.CHECKSUM_ERROR, Status.LENGTH_ERROR):
                    raise _RetryError(f"reader reports status {reply.status:#04x} for our command")
                if reply.status not in _EXPECTED[cmd]:
                    raise _RetryError(f"unexpected status {reply.status:#04x} (a late reply?)")
                if cmd is Command.READ_BASE and reply.status == Status.OK and not _complete(reply):
                    raise _RetryError("basic-info reply is inconsistent (a late reply?)")
                return reply
        raise _RetryError(f"no reply to {cmd.name} within {self.timeout:.1f} s")

    def _call(self, cmd: Command) -> Reply:
        """``_exchange`` with retries; ``CardReadError`` when they are used up."""
        last = ""
        for attempt in range(1, self.retries + 1):
            try:
                if attempt > 1:
                    drain(self._serial)
                return self._exchange(cmd)
            except _RetryError as exc:
                last = str(exc)
                log.info("%s attempt %d/%d failed: %s", cmd.name, attempt, self.retries, last)
            except OSError as exc:
                raise CardReadError(f"serial line {self.port} failed: {exc}") from None
        raise CardReadError(f"card reader on {self.port}: {cmd.name} failed: {last}")

    def poll(self) -> Identity | None:
        """Find, select and read the card; None when no card is on the reader."""
        for attempt in range(1, self.retries + 1):
            found = self._call(Command.FIND)
            if found.status == Status.NO_CARD:
                return None
            if found.status != Status.CARD_FOUND:
                raise CardReadError(f"find card: unexpected status {found.status:#04x}")
            selected = self._call(Command.SELECT)
            if selected.status == Status.OK:
                reply = self._call(Command.READ_BASE)
                if reply.status == Status.OK:
                    return self._identity(reply.data)
            else:
                reply = selected
            if reply.status == Status.NO_CARD:
                return None
            if reply.status not in (Status.SELECT_FAILED, Status.READ_FAILED):
                raise CardReadError(f"card reader status {reply.status:#04x}")
            log.info("card read attempt %d/%d: status %#04x", attempt, self.retries, reply.status)
        raise CardReadError(
            f"the card could not be read after {self.retries} attempts: "
            "ask the holder to place it flat on the reader and try again"
        )

    def _identity(self, data: bytes) -> Identity:
        text = parse_text(data[4 : 4 + TEXT_BYTES])
        photo, reason = decode_photo(data[4 + TEXT_BYTES :], self._wlt)
        return Identity(
            id_number=text.id_number,
            name=text.name,
            sex=text.sex,
            nation=text.nation,
            birth_date=text.birth_date,
            source="resident-id",
            address=text.address,
            authority=text.authority,
            valid_from=text.valid_from,
            valid_until=text.valid_until,
            photo=photo,
            photo_reason=reason,
        )
