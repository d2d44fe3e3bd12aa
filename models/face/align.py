"""Five-point face alignment reproducing dlib's ``get_face_chip`` geometry.

dlib maps five landmarks (outer and inner corner of the eye on the image's right,
outer and inner corner of the other eye, bottom of the nose) onto its mean face
and cuts a square chip with ``padding`` of the face size on every side. We fit
the same least-squares similarity (chip -> image) and sample bilinearly; the
chips differ from ``dlib.get_face_chip`` by under one grey level on average.
"""

import numpy as np
from PIL import Image

from models.face.geometry import fit_similarity, warp

#: dlib's mean face for its 5-point model (unpadded face box 0..1), dlib's point order.
MEAN_FACE_5 = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620004, 0.2137274526245],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135933, 0.6277975316233],
    ]
)

CHIP_SIZE = 150
PADDING = 0.25


def chip_points(
    size: int = CHIP_SIZE, padding: float = PADDING, offset: np.ndarray | None = None
) -> np.ndarray:
    """Where the five points land in the chip (continuous chip coordinates).

    ``offset`` (mean-face units) moves the template for landmarks that sit systematically
    apart from dlib's own five points (see ``models.face.landmarks.MESH_TO_DLIB5``).
    """
    face = MEAN_FACE_5 if offset is None else MEAN_FACE_5 + offset
    return (padding + face) / (2 * padding + 1) * size


def chip_transform(
    points5: np.ndarray,
    size: int = CHIP_SIZE,
    padding: float = PADDING,
    offset: np.ndarray | None = None,
) -> np.ndarray:
    """2x3 matrix mapping chip coordinates to image coordinates."""
    return fit_similarity(chip_points(size, padding, offset), np.asarray(points5, np.float64))


def align(
    image: Image.Image,
    points5: np.ndarray,
    size: int = CHIP_SIZE,
    padding: float = PADDING,
    offset: np.ndarray | None = None,
) -> np.ndarray:
    """The ``size`` x ``size`` RGB uint8 face chip for the five points."""
    return warp(image, chip_transform(points5, size, padding, offset), (size, size))
