"""SFace (OpenCV Zoo, Apache-2.0), converted from ONNX to TFLite, as an embedder plugin.

The chip is OpenCV's ``FaceRecognizerSF.alignCrop`` geometry (ArcFace's): a 112x112
similarity warp putting five points on a fixed template. The points come from the
bundle's keypoints model (YuNet, ``models.face.keypoints``) for the face the mesh found,
or from the mesh itself (the centre of each eye contour, the nose tip and the mouth
corners) when there is no keypoints model or it does not find that face.
"""

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from models.face.embedder import ChipEmbedder
from models.face.geometry import fit_similarity, warp
from models.face.landmarks import FaceLandmarks

if TYPE_CHECKING:
    from models.interfaces import Keypoints

CHIP_SIZE = 112

#: OpenCV's / ArcFace's 112x112 template (eye centre on the image's left, the other eye
#: centre, nose tip, mouth corner on the image's left, the other mouth corner), in
#: OpenCV's pixel-centre coordinates; + 0.5 makes them continuous (pixel i spans [i, i+1)).
TEMPLATE = (
    np.array(
        [
            [38.2946, 51.6963],
            [73.5318, 51.5014],
            [56.0252, 71.7366],
            [41.5493, 92.3655],
            [70.7299, 92.2041],
        ]
    )
    + 0.5
)

#: Mesh indices of the template's five points: each eye's contour (its mean is the eye
#: centre), the nose tip, the mouth corners; in the template's order.
SFACE5_FROM_MESH = (
    (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246),
    (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466),
    (1,),
    (61,),
    (291,),
)


def five_points(landmarks: FaceLandmarks) -> np.ndarray:
    """The template's five points [5, 2] taken from the mesh."""
    p = landmarks.points
    return np.array([p[list(ix), :2].mean(0) for ix in SFACE5_FROM_MESH])


def chip_transform(points5: np.ndarray) -> np.ndarray:
    """2x3 matrix mapping chip coordinates to image coordinates. Like OpenCV, the similarity
    is fitted from the image's points onto the template, then inverted (fitting the other
    way round weighs the residuals differently: chips 4-6 grey levels apart on average)."""
    to_chip = np.vstack([fit_similarity(points5, TEMPLATE), [0.0, 0.0, 1.0]])
    return np.linalg.inv(to_chip)[:2]


def chip(
    image: Image.Image, landmarks: FaceLandmarks, keypoints: "Keypoints | None" = None
) -> np.ndarray:
    """The 112x112 RGB uint8 SFace chip of a face: on ``keypoints``' five points when it
    finds the face, else on the mesh's."""
    points = five_points(landmarks)
    if keypoints is not None and (refined := keypoints.refine(image, points)) is not None:
        points = refined
    return warp(image, chip_transform(points), (CHIP_SIZE, CHIP_SIZE))


class SFaceEmbedder(ChipEmbedder):
    """128-d SFace templates, unit length (compared by the Euclidean distance of unit
    vectors, i.e. by cosine); input: the 112x112 RGB chip as 0..255 floats (the network
    subtracts 127.5 and scales by 1/128 itself). Options as ``ChipEmbedder``'s."""

    unit_length_default = True

    def chip(
        self, image: Image.Image, landmarks: FaceLandmarks, keypoints: "Keypoints | None" = None
    ) -> np.ndarray:
        """The chip OpenCV's ``alignCrop`` would cut (see :func:`chip`)."""
        return chip(image, landmarks, keypoints)
