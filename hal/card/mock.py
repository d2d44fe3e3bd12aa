"""A card reader driven from the device's side: ``insert(identity)``, ``remove()``."""

import threading

from hal.card import CardReader
from hal.card.identity import Identity
from hal.errors import CardReadError


class MockCardReader(CardReader):
    """Returns whatever card a test or demo put on it; ``fail()`` makes the next read fail."""

    def __init__(self) -> None:
        self._card: Identity | None = None
        self._failures = 0
        self._lock = threading.Lock()

    def insert(self, card: Identity) -> None:
        """Put a card on the reader."""
        with self._lock:
            self._card = card

    def remove(self) -> None:
        """Take the card away."""
        with self._lock:
            self._card = None

    def fail(self, times: int = 1) -> None:
        """Make the next ``times`` reads of a present card fail (a scratched card)."""
        with self._lock:
            self._failures += times

    def poll(self) -> Identity | None:
        with self._lock:
            if self._card is not None and self._failures:
                self._failures -= 1
                raise CardReadError("mock reader: the card could not be read")
            return self._card
