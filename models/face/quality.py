"""Quality measures the terminal gates on, and head pose from the face mesh."""

from dataclasses import dataclass

import numpy as np

from models.face.landmarks import FaceLandmarks

# Mesh indices: outer eye corners (image right / image left), forehead, chin.
_EYE_OUTER_IMAGE_RIGHT, _EYE_OUTER_IMAGE_LEFT = 263, 33
_FOREHEAD, _CHIN = 10, 152


@dataclass(frozen=True)
class HeadPose:
    """Degrees. yaw > 0: nose turned towards the image's right; pitch > 0: chin up;
    roll > 0: the eye line slopes down towards the image's right."""

    yaw: float
    pitch: float
    roll: float


@dataclass(frozen=True)
class Quality:
    """Per-face measures: sizes in pixels, brightness 0..255, blur as Laplacian variance."""

    faces: int
    face_width: float
    eye_distance: float
    pose: HeadPose
    brightness: float
    contrast: float
    sharpness: float


def head_pose(landmarks: FaceLandmarks) -> HeadPose:
    """Yaw, pitch and roll from the face's own axes in the 3-D mesh."""
    p = landmarks.points
    x_axis = p[_EYE_OUTER_IMAGE_RIGHT] - p[_EYE_OUTER_IMAGE_LEFT]
    y_axis = p[_CHIN] - p[_FOREHEAD]
    x_axis = x_axis / np.linalg.norm(x_axis)
    y_axis = y_axis - x_axis * float(x_axis @ y_axis)
    y_axis = y_axis / np.linalg.norm(y_axis)
    yaw = np.degrees(np.arcsin(np.clip(x_axis[2], -1, 1)))
    pitch = np.degrees(np.arcsin(np.clip(-y_axis[2], -1, 1)))
    roll = np.degrees(np.arctan2(x_axis[1], x_axis[0]))
    return HeadPose(float(yaw), float(pitch), float(roll))


def sharpness(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian (low = blurred)."""
    g = gray.astype(np.float64)
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1]
    return float(lap.var())


def measure(chip: np.ndarray, landmarks: FaceLandmarks, face_width: float, faces: int) -> Quality:
    """Quality of one face from its aligned chip (RGB uint8) and landmarks."""
    gray = chip.astype(np.float64) @ [0.299, 0.587, 0.114]
    inner = gray[gray.shape[0] // 5 : -gray.shape[0] // 5, gray.shape[1] // 5 : -gray.shape[1] // 5]
    p = landmarks.points
    eyes = float(np.hypot(*(p[_EYE_OUTER_IMAGE_RIGHT, :2] - p[_EYE_OUTER_IMAGE_LEFT, :2])))
    return Quality(
        faces=faces,
        face_width=face_width,
        eye_distance=eyes,
        pose=head_pose(landmarks),
        brightness=float(inner.mean()),
        contrast=float(inner.std()),
        sharpness=sharpness(inner),
    )
