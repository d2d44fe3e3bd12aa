"""A V4L2 camera (USB webcam) through OpenCV."""

import time
from pathlib import Path

import numpy as np

from hal.camera import Camera, Frame
from hal.errors import BackendUnavailableError, CameraError


class OpenCVCamera(Camera):
    """``device`` is a node such as /dev/video0; frames are converted from BGR to RGB."""

    def __init__(
        self, device: str = "/dev/video0", *, width: int = 640, height: int = 480, fps: int = 15
    ) -> None:
        try:
            import cv2
        except ImportError:
            raise BackendUnavailableError(
                "camera backend 'opencv' needs the Python package opencv-python-headless "
                "(pip install 'lifecert[camera]')"
            ) from None
        if not Path(device).exists():
            raise BackendUnavailableError(
                f"camera backend 'opencv': device node {device} does not exist "
                "(is the camera plugged in, and is the service in the 'video' group?)"
            )
        self._cap = cv2.VideoCapture(device, cv2.CAP_V4L2)
        if not self._cap.isOpened():
            raise CameraError(f"cannot open {device} through V4L2 (busy or not a capture device?)")
        self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self._cap.set(cv2.CAP_PROP_FPS, fps)
        self.device = device

    def read(self) -> Frame:
        ok, bgr = self._cap.read()
        if not ok:
            raise CameraError(f"{self.device} delivered no frame")
        return Frame(np.ascontiguousarray(bgr[:, :, ::-1]), time.monotonic())

    def _close(self) -> None:
        self._cap.release()
