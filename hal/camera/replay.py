"""A camera that replays a folder of images or a video file at a fixed frame rate."""

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from hal.camera import Camera, Frame
from hal.errors import BackendUnavailableError, CameraError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class ReplayCamera(Camera):
    """Frames from ``source`` (a folder of images in name order, or a video) at ``fps``.

    ``loop`` starts over at the end; otherwise ``read`` raises ``CameraError``
    ("end of recording"). Frames are paced: ``read`` waits until the next frame
    is due, as a real camera would.
    """

    def __init__(self, source: Path, fps: float = 15.0, loop: bool = False) -> None:
        if fps <= 0:
            raise ValueError("fps must be positive")
        if not source.exists():
            raise CameraError(f"replay source {source} does not exist")
        self.source, self.fps, self.loop = source, fps, loop
        self._files: list[Path] = []
        self._video: Any = None
        if source.is_dir():
            self._files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self._files:
                raise CameraError(
                    f"replay folder {source} holds no {'/'.join(IMAGE_SUFFIXES)} files"
                )
        else:
            self._video = self._open_video(source)
        self._index = 0
        self._next_due: float | None = None

    @staticmethod
    def _open_video(path: Path) -> Any:
        try:
            import cv2
        except ImportError:
            raise BackendUnavailableError(
                "camera backend 'replay' needs opencv-python-headless to play videos "
                "(pip install 'lifecert[camera]'); a folder of images needs only Pillow"
            ) from None
        video = cv2.VideoCapture(str(path))
        if not video.isOpened():
            raise CameraError(f"cannot open video {path}")
        return video

    def _load(self) -> np.ndarray:
        if self._video is not None:
            import cv2

            ok, bgr = self._video.read()
            if not ok and self.loop and self._index:
                self._video.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, bgr = self._video.read()
            if not ok:
                raise CameraError(f"end of recording {self.source}")
            self._index += 1
            return np.ascontiguousarray(bgr[:, :, ::-1])
        if self._index >= len(self._files):
            if not self.loop:
                raise CameraError(f"end of recording {self.source}")
            self._index = 0
        path = self._files[self._index]
        self._index += 1
        try:
            from PIL import Image
        except ImportError:
            raise BackendUnavailableError(
                "camera backend 'replay' needs Pillow (pip install 'lifecert[edge]')"
            ) from None
        try:
            with Image.open(path) as img:
                return np.asarray(img.convert("RGB"))
        except OSError as exc:
            raise CameraError(f"cannot read frame {path}: {exc}") from None

    def read(self) -> Frame:
        rgb = self._load()
        now = time.monotonic()
        if self._next_due is not None and self._next_due > now:
            time.sleep(self._next_due - now)
            now = time.monotonic()
        self._next_due = now + 1.0 / self.fps
        return Frame(rgb, now)

    def _close(self) -> None:
        if self._video is not None:
            self._video.release()
