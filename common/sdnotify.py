"""systemd's notify protocol (sd_notify(3)): READY, WATCHDOG, STOPPING, STATUS.

A datagram to ``$NOTIFY_SOCKET`` (a path or an abstract ``@name``); a no-op
when the variable is unset, so services run the same outside systemd.
"""

import os
import socket


def notify(*lines: str) -> bool:
    """Send ``KEY=value`` lines to systemd; True if they were sent.

    Like sd_notify(3), a failure (no listener, full queue) is reported, never raised,
    and never blocks the caller.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.send("\n".join(lines).encode(), socket.MSG_DONTWAIT)
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of ``$WATCHDOG_USEC``), or None if not asked."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000
