"""A virtual social-security card for the real PC/SC stack (pcscd + vsmartcard's vpcd).

vpcd listens on 127.0.0.1:35963 for a card; the card connects, and every
message both ways is a 2-byte big-endian length plus payload. A 1-byte
message from vpcd is a control code (0 power off, 1 power on, 2 reset,
4 send the ATR); anything longer is a command APDU to answer with data + SW.
``insert()`` connects (the reader sees a card), ``remove()`` disconnects.
"""

import contextlib
import logging
import socket
import threading
from types import TracebackType
from typing import Final, Self

from hal.card.sscard import (
    AID,
    BAD_INS,
    FILE_NOT_FOUND,
    OK,
    RECORD_NOT_FOUND,
    RECORDS,
    SocialSecurityHolder,
)

log = logging.getLogger(__name__)

VPCD_PORT: Final = 35963
ATR: Final = bytes.fromhex("3B8880010000000000000000")


def _sw(code: int) -> bytes:
    return code.to_bytes(2, "big")


class VirtualSocialSecurityCard:
    """Serves ``holder``'s records; ``aid`` can be changed to model a wrong card."""

    def __init__(
        self,
        holder: SocialSecurityHolder,
        host: str = "127.0.0.1",
        port: int = VPCD_PORT,
        aid: bytes = AID,
    ) -> None:
        self.holder, self.host, self.port, self.aid = holder, host, port, aid
        self.apdus: list[bytes] = []
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._selected = False

    def insert(self, timeout: float = 5.0) -> None:
        """Connect to vpcd: the virtual reader now holds this card."""
        if self._sock is not None:
            return
        try:
            self._sock = socket.create_connection((self.host, self.port), timeout=timeout)
        except OSError as exc:
            raise ConnectionError(
                f"vpcd is not listening on {self.host}:{self.port} ({exc}): "
                "is pcscd running with vsmartcard-vpcd installed?"
            ) from None
        self._sock.settimeout(None)
        self._thread = threading.Thread(target=self._serve, args=(self._sock,), daemon=True)
        self._thread.start()

    def remove(self) -> None:
        """Disconnect: the reader is empty again."""
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    @staticmethod
    def _recv_exact(sock: socket.socket, count: int) -> bytes | None:
        data = b""
        while len(data) < count:
            part = sock.recv(count - len(data))
            if not part:
                return None
            data += part
        return data

    def _serve(self, sock: socket.socket) -> None:
        try:
            while True:
                head = self._recv_exact(sock, 2)
                if head is None:
                    return
                msg = self._recv_exact(sock, int.from_bytes(head, "big"))
                if msg is None:
                    return
                answer = self._control(msg[0]) if len(msg) == 1 else self.respond(msg)
                if answer is not None:
                    sock.sendall(len(answer).to_bytes(2, "big") + answer)
        except OSError:
            return

    def _control(self, code: int) -> bytes | None:
        if code in (0, 1, 2):
            self._selected = False
            return None
        return ATR if code == 4 else None

    def respond(self, apdu: bytes) -> bytes:
        """The response APDU (data + SW1 SW2) to ``apdu``."""
        self.apdus.append(apdu)
        if len(apdu) < 4:
            return _sw(0x6700)
        ins, p1, p2 = apdu[1], apdu[2], apdu[3]
        if ins == 0xA4 and p1 == 0x04:
            name = apdu[5 : 5 + apdu[4]] if len(apdu) > 5 else b""
            self._selected = name == self.aid
            return _sw(OK if self._selected else FILE_NOT_FOUND)
        if ins == 0xB2:
            if not self._selected:
                return _sw(FILE_NOT_FOUND)
            entry = RECORDS.get(p1)
            if entry is None or entry[0] != p2 >> 3:
                return _sw(RECORD_NOT_FOUND)
            value = self.holder.records()[p1]
            return bytes([p1, len(value)]) + value + _sw(OK)
        return _sw(BAD_INS)

    def close(self) -> None:
        """Same as ``remove``."""
        self.remove()

    def __enter__(self) -> Self:
        self.insert()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()
