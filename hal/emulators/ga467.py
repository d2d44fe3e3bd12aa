"""GA/T 467 resident-ID reader emulator: serves a card (or none) over a pty.

Faults are injected from the device's side, like a person fiddling with the
card: ``remove()``, ``insert(card)``, and ``faults.inject(...)`` for checksum
errors, garbage before replies, slow replies, silent drops, failed select/read.
"""

import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from common import idnumber
from hal.card.ga467_frames import Command, FrameParser, Status, response
from hal.card.identity import CardText, build_text
from hal.emulators.faults import Faults
from hal.emulators.pty import PtyPeer
from hal.errors import FrameError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResidentCard:
    """A card to serve: its printed fields and the photo block the reader delivers."""

    text: CardText
    photo: bytes = b""

    @classmethod
    def demo(cls, photo: bytes = b"", serial: int = 2) -> "ResidentCard":
        """A valid card for a retiree born in 1950 (fields are made up)."""
        born = dt.date(1950, 3, 14)
        return cls(
            CardText(
                id_number=idnumber.make("110105", born, serial),
                name="张秀英",
                sex="F" if serial % 2 == 0 else "M",
                nation="01",
                birth_date=born,
                address="北京市朝阳区幸福路1号",
                authority="北京市公安局朝阳分局",
                valid_from=dt.date(2015, 6, 1),
                valid_until=None,
            ),
            photo,
        )

    @classmethod
    def with_photo_file(cls, text: CardText, path: Path) -> "ResidentCard":
        """A card whose reader delivers the JPEG/BMP (or WLT) file at ``path``."""
        return cls(text, path.read_bytes())


class GA467Emulator(PtyPeer):
    """A GA/T 467 reader on a pty."""

    def __init__(self, card: ResidentCard | None = None, pace_baud: int | None = None) -> None:
        super().__init__(pace_baud)
        self.card = card
        self.selected = False
        self.faults = Faults("checksum", "garbage", "silent", "select_fail", "read_fail")
        self.commands: list[str] = []
        self._parser = FrameParser(min_length=3)

    def insert(self, card: ResidentCard) -> None:
        """Put ``card`` on the reader."""
        with self._lock:
            self.card, self.selected = card, False

    def remove(self) -> None:
        """Take the card away."""
        with self._lock:
            self.card, self.selected = None, False

    def handle(self, data: bytes) -> None:
        for item in self._parser.feed(data):
            if isinstance(item, FrameError):
                self.commands.append("bad-frame")
                self._reply(response(Status.CHECKSUM_ERROR))
            else:
                self._command(item)

    def _command(self, body: bytes) -> None:
        names = {c.value: c for c in Command}
        cmd = names.get(body[:2])
        self.commands.append(cmd.name if cmd else body[:2].hex())
        card = self.card
        if cmd is None:
            self._reply(response(Status.BAD_COMMAND))
        elif card is None:
            self._reply(response(Status.NO_CARD))
        elif cmd is Command.FIND:
            self._reply(response(Status.CARD_FOUND, bytes(4)))
        elif cmd is Command.SELECT:
            if self.faults.take("select_fail"):
                self._reply(response(Status.SELECT_FAILED))
            else:
                self.selected = True
                self._reply(response(Status.OK, bytes(8)))
        elif not self.selected or self.faults.take("read_fail"):
            self._reply(response(Status.READ_FAILED))
        else:
            text = build_text(card.text)
            lengths = len(text).to_bytes(2, "big") + len(card.photo).to_bytes(2, "big")
            self._reply(response(Status.OK, lengths + text + card.photo))

    def _reply(self, frame: bytes) -> None:
        if self.faults.delay and self.stopped.wait(self.faults.delay):
            return
        if self.faults.take("silent"):
            return
        if self.faults.take("checksum"):
            frame = frame[:-1] + bytes([frame[-1] ^ 0xFF])
        if self.faults.take("garbage"):
            frame = os.urandom(17) + frame
        self.send(frame)
