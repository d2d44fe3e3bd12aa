"""A serial peer on the master side of a pseudo-terminal."""

import contextlib
import logging
import os
import select
import threading
import time
import tty
from types import TracebackType
from typing import Self

log = logging.getLogger(__name__)


class PtyPeer:
    """Serves a byte protocol on a pty; ``path`` is the slave to open as a serial port.

    With ``pace_baud`` the peer waits the time the bytes would take on a real
    8N1 line at that rate (10 bits per byte) in both directions, because a pty
    itself moves bytes at memory speed whatever baud rate is set on it.
    """

    def __init__(self, pace_baud: int | None = None) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self.pace_baud = pace_baud
        self.stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def handle(self, data: bytes) -> None:
        """Process bytes from the host (subclasses answer through ``send``)."""
        raise NotImplementedError

    def _wire_time(self, count: int) -> float:
        return count * 10 / self.pace_baud if self.pace_baud else 0.0

    def send(self, data: bytes) -> None:
        """Write ``data`` to the host (paced when asked)."""
        if self.pace_baud:
            time.sleep(self._wire_time(len(data)))
        view = memoryview(data)
        while view and not self.stopped.is_set():
            written = os.write(self._master, view)
            view = view[written:]

    def _serve(self) -> None:
        while not self.stopped.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                return
            if self.pace_baud:
                time.sleep(self._wire_time(len(data)))
            with self._lock:
                self.handle(data)

    def start(self) -> Self:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._serve, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self, stop: threading.Event) -> None:
        """Serve in this thread until ``stop`` is set."""
        self.stopped = stop
        self._serve()

    def close(self) -> None:
        """Stop serving and close both ends of the pty."""
        self.stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
