"""Figures kept for a few seconds: the dashboard is computed at most once per key and
period however many people open it (``[console] dashboard_cache_s``), one computation at a
time per key while the others wait for its result."""

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any


class Fresh:
    """Values no older than ``seconds`` (0: always computed)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.clock = seconds, clock
        self._values: dict[Hashable, tuple[float, Any]] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value of ``key``, computed by ``compute`` when missing or older than allowed."""
        if self.seconds <= 0:
            return compute()
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            now = self.clock()
            kept = self._values.get(key)
            if kept is not None and now - kept[0] < self.seconds:
                return kept[1]
            value = compute()
            with self._guard:
                self._values = {k: v for k, v in self._values.items() if now - v[0] < self.seconds}
                self._values[key] = (self.clock(), value)
            return value
