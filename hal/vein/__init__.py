"""Finger-vein sensors: the ``VeinSensor`` port.

Backends: ``SerialVeinSensor`` (a vein module on a serial line) and
``MockVeinSensor`` (driven from the device's side with ``present(image)``).
A capture guides the person through prompts: place the finger, release it
(a module captures a placement once), or reposition it (no vein detected).
"""

import abc
import enum
import time
from collections.abc import Callable

import numpy as np

from hal.device import Device
from hal.errors import NoFingerError


class Prompt(enum.Enum):
    """What the person at the sensor should do."""

    PLACE_FINGER = "place finger"
    RELEASE_FINGER = "release finger"
    NO_VEIN = "no vein detected: place the finger flat and straight"


def has_vein_pattern(image: np.ndarray) -> bool:
    """A plausible NIR finger image: enough contrast and neither black nor saturated."""
    return bool(image.std() >= 6.0 and 20 <= image.mean() <= 235)


class VeinSensor(Device, abc.ABC):
    """A finger-vein sensor delivering 8-bit NIR images (rows along the finger)."""

    @abc.abstractmethod
    def finger_present(self) -> bool:
        """Whether a finger rests on the sensor now."""

    poll_interval: float = 0.1

    @abc.abstractmethod
    def _try_capture(self) -> np.ndarray | Prompt:
        """One capture attempt: the image, or what the person must do first."""

    def capture(
        self, timeout: float = 10.0, on_prompt: Callable[[Prompt], None] | None = None
    ) -> np.ndarray:
        """The next vein image (uint8, H x W); prompts the person until it succeeds.

        ``on_prompt`` hears each new prompt once. Raises ``NoFingerError`` when
        ``timeout`` seconds pass first.
        """
        deadline = time.monotonic() + timeout
        last: Prompt | None = None
        while True:
            result = self._try_capture()
            if isinstance(result, np.ndarray):
                return result
            if result is not last and on_prompt is not None:
                on_prompt(result)
            last = result
            if time.monotonic() + self.poll_interval > deadline:
                raise NoFingerError(f"no vein image within {timeout:g} s ({result.value})")
            time.sleep(self.poll_interval)


__all__ = ["Prompt", "VeinSensor", "has_vein_pattern"]
