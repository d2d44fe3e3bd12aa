"""A vein sensor driven from the device's side: ``present(image)``, ``lift()``."""

import threading

import numpy as np

from hal.vein import Prompt, VeinSensor, has_vein_pattern


class MockVeinSensor(VeinSensor):
    """Behaves like a module: one capture per placement, no image without veins."""

    poll_interval = 0.02

    def __init__(self) -> None:
        self._image: np.ndarray | None = None
        self._captured = False
        self._lock = threading.Lock()

    def present(self, image: np.ndarray) -> None:
        """Place a finger whose NIR image is ``image`` (uint8, 2-D)."""
        if image.ndim != 2 or image.dtype != np.uint8:
            raise ValueError("a vein image is a 2-D uint8 array")
        with self._lock:
            self._image, self._captured = image.copy(), False

    def lift(self) -> None:
        """Take the finger away."""
        with self._lock:
            self._image, self._captured = None, False

    def finger_present(self) -> bool:
        with self._lock:
            return self._image is not None

    def _try_capture(self) -> np.ndarray | Prompt:
        with self._lock:
            if self._image is None:
                return Prompt.PLACE_FINGER
            if self._captured:
                return Prompt.RELEASE_FINGER
            if not has_vein_pattern(self._image):
                return Prompt.NO_VEIN
            self._captured = True
            return self._image.copy()
