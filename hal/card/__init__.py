"""Card readers: the ``CardReader`` port and the identity record they return.

Backends: ``GA467CardReader`` (resident ID, serial), ``PcscCardReader``
(social-security card, PC/SC), ``MockCardReader`` (driven by tests and demos).
"""

import abc
import time

from hal.card.identity import Identity
from hal.device import Device
from hal.errors import NoCardError


class CardReader(Device, abc.ABC):
    """A reader that may hold a card."""

    @abc.abstractmethod
    def poll(self) -> Identity | None:
        """The identity on the card now present, or None when there is no card."""

    def wait(self, timeout: float, interval: float = 0.25) -> Identity:
        """Poll until a card is read; ``NoCardError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            identity = self.poll()
            if identity is not None:
                return identity
            if time.monotonic() + interval > deadline:
                raise NoCardError(f"no card presented within {timeout:.0f} s")
            time.sleep(interval)


__all__ = ["CardReader", "Identity"]
