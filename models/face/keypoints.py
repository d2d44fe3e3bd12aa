"""YuNet (OpenCV Zoo, MIT) as the source of SFace's five alignment points.

SFace's own pipeline (OpenCV's ``FaceDetectorYN``, then ``alignCrop``) aligns on YuNet's
keypoints (eye centres, nose tip, mouth corners) found on the whole image. The face mesh's
points for them sit elsewhere, face by face, and YuNet's keypoints move with the framing
(0.07-0.1 eye spans for a shift of a few pixels), so YuNet runs as OpenCV runs it: on the
whole image at its own scale, top-left in a zero-padded input (shrunk by a whole factor
first only when the image is larger than the input: a 640x480 frame by 2 into 320x256).
It runs once per chip, not per frame.

Decoding follows ``FaceDetectorYN``: per stride ``s`` and grid cell (row ``r``, column
``c``), score = sqrt(class x objectness) and keypoint ``k`` = (offset + (c, r)) x s. Of the
cells scoring ``min_score`` or more, the best one whose keypoints lie near the mesh's
(mean distance under half the eye span) is the face.
"""

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from models.runtime import TFLiteModel

if TYPE_CHECKING:
    from models.bundle import ModelSpec

STRIDES = (8, 16, 32)


def decode(outputs: list[np.ndarray], width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores [N] and five keypoints [N, 5, 2] (continuous input coordinates) of every
    cell, from YuNet's twelve outputs (cls, obj, bbox, kps per stride)."""
    scores, points = [], []
    for i, stride in enumerate(STRIDES):
        cols, rows = width // stride, height // stride
        cls, obj = outputs[i].reshape(-1), outputs[3 + i].reshape(-1)
        scores.append(np.sqrt(np.clip(cls, 0.0, 1.0) * np.clip(obj, 0.0, 1.0)))
        cells = np.arange(cols * rows)
        grid = np.column_stack([cells % cols, cells // cols]).astype(np.float64)
        points.append((outputs[9 + i].reshape(-1, 5, 2) + grid[:, None, :]) * stride + 0.5)
    return np.concatenate(scores), np.concatenate(points)


class YuNetKeypoints:
    """Five alignment points of the face the mesh found; option ``min_score`` (default 0.5)."""

    def __init__(self, content: bytes, spec: "ModelSpec", threads: int = 1) -> None:
        self.model = TFLiteModel(content, spec.file, threads)
        _, self.height, self.width, _ = self.model.input_shape
        self.min_score = float(spec.options.get("min_score", 0.5))
        self._input = np.zeros((1, self.height, self.width, 3), np.float32)

    def prepare(self, image: Image.Image) -> float:
        """Write ``image`` (BGR, 0..255, top-left) into the input, shrunk by the smallest
        whole factor that fits (box filter: a 640x480 frame by 2 in 0.3 ms, where a bilinear
        resize took 2 ms); its scale."""
        factor = max(1, -(-image.width // self.width), -(-image.height // self.height))
        if factor > 1:
            image = image.reduce(factor)
        pixels = np.asarray(image)
        self._input.fill(0.0)
        self._input[0, : pixels.shape[0], : pixels.shape[1]] = pixels[:, :, ::-1]
        return 1.0 / factor

    def refine(self, image: Image.Image, rough: np.ndarray) -> np.ndarray | None:
        """YuNet's five points [5, 2] (image coordinates, ``rough``'s order: eye on the
        image's left, other eye, nose tip, mouth corners left then right) of the face whose
        ``rough`` points the mesh gave; ``None`` when YuNet does not find that face."""
        scale = self.prepare(image)
        scores, points = decode(self.model.run(self._input), self.width, self.height)
        points = points / scale
        eye_span = float(np.linalg.norm(rough[1] - rough[0]))
        near = np.linalg.norm(points - rough, axis=2).mean(1) < eye_span / 2
        found = np.flatnonzero(near & (scores >= self.min_score))
        if not len(found):
            return None
        return points[found[np.argmax(scores[found])]]
