"""Head pose, eye and mouth openness from synthetic 3-D landmarks."""

import numpy as np
import pytest

from models.face import liveness
from models.face.landmarks import FaceLandmarks
from models.face.quality import head_pose, sharpness


def _face(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0, eye: float = 0.3,
          mouth: float = 0.0) -> FaceLandmarks:  # fmt: skip
    """A schematic face (x right, y down, z away from the camera), rotated and placed."""
    p = np.zeros((468, 3))
    p[33], p[133], p[362], p[263] = [-45, 0, 0], [-15, 0, 0], [15, 0, 0], [45, 0, 0]
    for upper, lower, (x0, x1) in (((160, 158), (144, 153), (-45, -15)),
                                   ((385, 387), (380, 373), (15, 45))):  # fmt: skip
        xs = (x0 + (x1 - x0) / 3, x0 + 2 * (x1 - x0) / 3)
        for k in range(2):
            p[upper[k]] = [xs[k], -eye * 15, 0]
            p[lower[k]] = [xs[k], eye * 15, 0]
    p[10], p[152] = [0, -70, 0], [0, 90, 0]
    p[1] = [0, 30, -40]  # nose tip
    p[78], p[308] = [-25, 50, 0], [25, 50, 0]
    p[13], p[14] = [0, 50 - mouth * 25, 0], [0, 50 + mouth * 25, 0]
    y, x, r = np.radians([yaw, pitch, roll])
    # yaw > 0 turns the nose (towards the camera, z < 0) to the image's right
    ry = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(x), np.sin(x)], [0, -np.sin(x), np.cos(x)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return FaceLandmarks(p @ (rz @ ry @ rx).T + [320, 240, 0], 1.0)


POSES = [(0, 0, 0), (25, 0, 0), (-30, 0, 0), (0, 15, 0), (0, -20, 0), (0, 0, 12)]


@pytest.mark.parametrize(("yaw", "pitch", "roll"), POSES)
def test_head_pose_recovers_the_rotation(yaw: float, pitch: float, roll: float) -> None:
    face = _face(yaw, pitch, roll)
    pose = head_pose(face)
    nose_shift = face.points[1, 0] - (face.points[33, 0] + face.points[263, 0]) / 2
    if yaw:
        assert np.sign(nose_shift) == np.sign(yaw)
    assert (pose.yaw, pose.pitch, pose.roll) == pytest.approx((yaw, pitch, roll), abs=0.5)


def test_eye_openness_drops_when_eyes_close() -> None:
    open_, closed = liveness.eye_openness(_face(eye=0.3)), liveness.eye_openness(_face(eye=0.05))
    assert open_ == pytest.approx(0.3, abs=0.01)
    assert closed < 0.1 < open_


def test_mouth_openness_rises_when_the_mouth_opens() -> None:
    assert liveness.mouth_openness(_face(mouth=0.0)) == pytest.approx(0.0, abs=1e-9)
    assert liveness.mouth_openness(_face(mouth=0.6)) == pytest.approx(0.6, abs=0.01)


def test_sharpness_is_lower_for_a_blurred_image() -> None:
    rng = np.random.default_rng(2)
    sharp = rng.uniform(0, 255, (64, 64))
    blurred = (sharp + np.roll(sharp, 1, 0) + np.roll(sharp, 1, 1) + np.roll(sharp, 1, (0, 1))) / 4
    assert sharpness(blurred) < sharpness(sharp) / 4
