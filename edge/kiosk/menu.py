"""The choice made on the idle screen before a card is inserted ("check my status").

The session's ``Choices`` port: the page sets it, the session takes it with the next card.
A choice nobody followed with a card lapses after ``ttl_s`` seconds, so the next person's
card certifies as usual.
"""

import threading
import time
from collections.abc import Callable

CHOICES = ("status",)


class Menu:
    """One pending choice at a time, kept ``ttl_s`` seconds; ``on_change`` wakes the page."""

    def __init__(
        self,
        on_change: Callable[[], None],
        ttl_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_change, self._ttl_s, self._clock = on_change, ttl_s, clock
        self._lock = threading.Lock()
        self._choice: str | None = None
        self._at = 0.0

    def choose(self, choice: str | None) -> None:
        """Set (or with ``None`` cancel) the choice; ``ValueError`` for an unknown one."""
        if choice is not None and choice not in CHOICES:
            raise ValueError(f"choice must be one of {CHOICES} or null")
        with self._lock:
            self._choice, self._at = choice, self._clock()
        self._on_change()

    def pending(self) -> str | None:
        """The choice waiting for a card, if it has not lapsed."""
        with self._lock:
            if self._choice is not None and self._clock() - self._at > self._ttl_s:
                self._choice = None
            return self._choice

    def take(self) -> str | None:
        """The pending choice, cleared."""
        choice = self.pending()
        if choice is not None:
            self.choose(None)
        return choice
