"""Landmark measures for active liveness challenges (blink, open mouth, turn head).

Plain functions of a :class:`FaceLandmarks`; issue 6 builds its challenges on them.
"""

import numpy as np

from models.face.landmarks import FaceLandmarks
from models.face.quality import HeadPose, head_pose

# Mesh indices (p1 corner, p2, p3 upper lid, p4 corner, p5, p6 lower lid) per eye.
RIGHT_EYE = (33, 160, 158, 133, 153, 144)
LEFT_EYE = (362, 385, 387, 263, 373, 380)
MOUTH_INNER = (13, 14)  # upper and lower inner lip, centre
MOUTH_CORNERS = (78, 308)


def _dist(p: np.ndarray, a: int, b: int) -> float:
    return float(np.hypot(*(p[a, :2] - p[b, :2])))


def eye_aspect_ratio(landmarks: FaceLandmarks, eye: tuple[int, ...]) -> float:
    """(|p2-p6| + |p3-p5|) / (2 |p1-p4|): about 0.25-0.35 open, under 0.15 closed."""
    p = landmarks.points
    p1, p2, p3, p4, p5, p6 = eye
    return (_dist(p, p2, p6) + _dist(p, p3, p5)) / (2.0 * max(_dist(p, p1, p4), 1e-9))


def eye_openness(landmarks: FaceLandmarks) -> float:
    """Mean eye aspect ratio of both eyes."""
    return (eye_aspect_ratio(landmarks, RIGHT_EYE) + eye_aspect_ratio(landmarks, LEFT_EYE)) / 2


def mouth_openness(landmarks: FaceLandmarks) -> float:
    """Inner lip gap over mouth width: near 0 closed, above ~0.3 wide open."""
    p = landmarks.points
    return _dist(p, *MOUTH_INNER) / max(_dist(p, *MOUTH_CORNERS), 1e-9)


def pose(landmarks: FaceLandmarks) -> HeadPose:
    """Head pose (yaw, pitch, roll in degrees) for turn-your-head challenges."""
    return head_pose(landmarks)
