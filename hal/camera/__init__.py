"""Cameras: the ``Camera`` port yielding RGB frames with timestamps.

Backends: ``Picamera2Camera`` (Raspberry Pi camera), ``OpenCVCamera`` (V4L2
device) and ``ReplayCamera`` (a folder of images or a video, paced).
"""

import abc
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from hal.device import Device


@dataclass(frozen=True)
class Frame:
    """One RGB image (uint8, H x W x 3) and its capture time (``time.monotonic()`` seconds)."""

    rgb: np.ndarray
    timestamp: float


class Camera(Device, abc.ABC):
    """A source of RGB frames."""

    @abc.abstractmethod
    def read(self) -> Frame:
        """The next frame (blocks until it is due); ``CameraError`` when there is none."""

    def frames(self, count: int | None = None) -> Iterator[Frame]:
        """Up to ``count`` frames (forever when None)."""
        taken = 0
        while count is None or taken < count:
            yield self.read()
            taken += 1


__all__ = ["Camera", "Frame"]
