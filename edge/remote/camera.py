"""``UploadCamera``: a HAL-style camera fed by the frames a phone's browser uploads.

Driven from the device's side like the HAL's mocks: the web app calls :meth:`feed` with each
decoded frame, the session core calls :meth:`read`. Frames are stamped with the time they
arrived here (never the phone's clock), kept in memory only, and only the newest few: a
session that falls behind skips stale frames instead of answering late. A phone that stops
sending ends the session (``CameraError`` after ``idle_s``).
"""

import collections
import threading
import time

import numpy as np

from hal.camera import Camera, Frame
from hal.errors import CameraError


class UploadCamera(Camera):
    """Frames pushed by :meth:`feed`; :meth:`read` waits for the next one."""

    def __init__(self, idle_s: float, keep: int = 2) -> None:
        self.idle_s = idle_s
        self._frames: collections.deque[Frame] = collections.deque(maxlen=keep)
        self._cond = threading.Condition()
        self.fed = 0
        self.skipped = 0

    def feed(self, rgb: np.ndarray) -> None:
        """Hand over one RGB frame (uint8, H x W x 3) as it arrives."""
        with self._cond:
            if self.closed:
                raise CameraError("the session has ended")
            if len(self._frames) == self._frames.maxlen:
                self.skipped += 1
            self._frames.append(Frame(rgb, time.monotonic()))
            self.fed += 1
            self._cond.notify_all()

    def read(self) -> Frame:
        with self._cond:
            if not self._cond.wait_for(lambda: self._frames or self.closed, self.idle_s):
                raise CameraError(f"no frame from the phone for {self.idle_s:g} s")
            if self.closed:
                raise CameraError("the session has ended")
            return self._frames.popleft()

    def _close(self) -> None:
        with self._cond:
            self._frames.clear()
            self._cond.notify_all()
