"""ReplayCamera feeding real face images (a folder, and a video made from them)."""

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hal.camera.replay import ReplayCamera
from hal.errors import CameraError


@pytest.fixture
def frames(shared_data: Path, tmp_path: Path) -> Path:
    """Six real LFW faces as a recording folder (copied to tmp, never into the repo)."""
    source = sorted((shared_data / "faces/lfw/images/Colin_Powell").glob("*.jpg"))[:6]
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, path in enumerate(source):
        shutil.copy(path, folder / f"{i:04d}.jpg")
    return folder


def test_folder_frames_are_the_images_in_order(frames: Path) -> None:
    with ReplayCamera(frames, fps=100) as cam:
        got = list(cam.frames(6))
    for frame, path in zip(got, sorted(frames.iterdir()), strict=True):
        with Image.open(path) as img:
            assert np.array_equal(frame.rgb, np.asarray(img.convert("RGB")))
        assert frame.rgb.shape == (250, 250, 3) and frame.rgb.dtype == np.uint8


def test_frames_are_paced_at_the_frame_rate(frames: Path) -> None:
    with ReplayCamera(frames, fps=20) as cam:
        stamps = [f.timestamp for f in cam.frames(6)]
    gaps = np.diff(stamps)
    assert gaps.min() >= 0.05 - 0.002
    assert stamps[-1] - stamps[0] < 0.05 * 5 + 0.2


def test_end_of_recording_and_loop(frames: Path) -> None:
    cam = ReplayCamera(frames, fps=1000)
    list(cam.frames(6))
    with pytest.raises(CameraError, match="end of recording"):
        cam.read()
    looped = ReplayCamera(frames, fps=1000, loop=True)
    first = looped.read().rgb
    for _ in range(5):
        looped.read()
    assert np.array_equal(looped.read().rgb, first)


def test_video_replay_is_rgb(frames: Path, tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless not installed")
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (250, 250))
    images = []
    for path in sorted(frames.iterdir()):
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"))
        images.append(rgb)
        writer.write(np.ascontiguousarray(rgb[:, :, ::-1]))
    writer.release()
    with ReplayCamera(video, fps=200) as cam:
        got = [f.rgb for f in cam.frames(6)]
        with pytest.raises(CameraError):
            cam.read()
    for frame, rgb in zip(got, images, strict=True):
        # MJPG is lossy: close, and channel order kept (a BGR mix-up would be far off)
        assert np.abs(frame.astype(int) - rgb.astype(int)).mean() < 6


def test_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="does not exist"):
        ReplayCamera(tmp_path / "nothing")
    with pytest.raises(CameraError, match="holds no"):
        ReplayCamera(tmp_path)
    start = time.monotonic()
    with pytest.raises(ValueError, match="fps"):
        ReplayCamera(tmp_path, fps=0)
    assert time.monotonic() - start < 1
