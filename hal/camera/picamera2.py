"""The Raspberry Pi camera through picamera2 (imported only here)."""

import time

import numpy as np

from hal.camera import Camera, Frame
from hal.errors import BackendUnavailableError, CameraError


class Picamera2Camera(Camera):
    """libcamera camera ``index``; picamera2's "RGB888" is B, G, R in memory, so we flip it."""

    def __init__(
        self, index: int = 0, *, width: int = 640, height: int = 480, fps: int = 15
    ) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise BackendUnavailableError(
                "camera backend 'picamera2' needs the picamera2 package "
                "(apt install python3-picamera2 on Raspberry Pi OS, or pip install 'lifecert[pi]')"
            ) from None
        try:
            self._cam = Picamera2(index)
            config = self._cam.create_video_configuration(
                main={"size": (width, height), "format": "RGB888"},
                controls={"FrameRate": fps},
            )
            self._cam.configure(config)
            self._cam.start()
        except (RuntimeError, IndexError, OSError) as exc:
            raise CameraError(f"Raspberry Pi camera {index} cannot start: {exc}") from None

    def read(self) -> Frame:
        try:
            bgr = self._cam.capture_array("main")
        except RuntimeError as exc:
            raise CameraError(f"Raspberry Pi camera stopped: {exc}") from None
        return Frame(np.ascontiguousarray(bgr[:, :, 2::-1]), time.monotonic())

    def _close(self) -> None:
        self._cam.stop()
        self._cam.close()
