"""Fault injection shared by the emulators: counters of faults still to inject."""

import threading


class Faults:
    """``inject(checksum=2, delay=0.5)``; the emulator ``take``s one fault per use."""

    def __init__(self, *names: str) -> None:
        self._left = dict.fromkeys(names, 0)
        self.delay = 0.0
        self.history: list[str] = []
        self._lock = threading.Lock()

    def inject(self, delay: float | None = None, **counts: int) -> None:
        """Add faults to inject; ``delay`` (seconds) applies to every reply until changed."""
        with self._lock:
            for name, count in counts.items():
                if name not in self._left:
                    raise ValueError(f"unknown fault {name!r}: one of {sorted(self._left)}")
                self._left[name] += count
            if delay is not None:
                self.delay = delay

    def take(self, name: str) -> bool:
        """True (and one fewer left) when a fault ``name`` is pending."""
        with self._lock:
            if self._left[name] > 0:
                self._left[name] -= 1
                self.history.append(name)
                return True
            return False

    def pending(self) -> dict[str, int]:
        """Faults not injected yet."""
        with self._lock:
            return {k: v for k, v in self._left.items() if v}
