"""Helpers shared by the serial backends."""

import time
from typing import Any


def drain(port: Any, quiet: float = 0.05, limit: float = 0.5) -> int:
    """Discard input until the line has been silent for ``quiet`` seconds (at most ``limit``).

    Called before a retry, so that a late reply to the failed attempt cannot be
    taken for the reply to the next command. Returns the bytes discarded.
    """
    dropped = 0
    deadline = time.monotonic() + limit
    last = time.monotonic()
    while time.monotonic() < deadline:
        waiting = port.in_waiting
        if waiting:
            dropped += len(port.read(waiting))
            last = time.monotonic()
        elif time.monotonic() - last >= quiet:
            break
        else:
            time.sleep(0.005)
    port.reset_input_buffer()
    return dropped
