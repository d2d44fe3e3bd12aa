"""Requests per client address in a sliding hour, in memory (central limits per ID number
and per phone as well, across every remote terminal)."""

import collections
import threading
import time
from collections.abc import Callable

_MAX_ADDRESSES = 100_000  # beyond this the oldest addresses are forgotten


class AddressLimits:
    """At most ``per_hour`` requests from one address in any hour."""

    def __init__(
        self, per_hour: int, clock: Callable[[], float] = time.monotonic, window_s: float = 3600
    ) -> None:
        self.per_hour, self.window_s, self._clock = per_hour, window_s, clock
        self._seen: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

    def take(self, address: str) -> bool:
        """Count one request from ``address``; False when it is over the limit."""
        now = self._clock()
        with self._lock:
            times = self._seen.pop(address, None) or collections.deque()
            while times and now - times[0] > self.window_s:
                times.popleft()
            self._seen[address] = times
            if len(self._seen) > _MAX_ADDRESSES:
                self._seen.popitem(last=False)
            if len(times) >= self.per_hour:
                return False
            times.append(now)
            return True
