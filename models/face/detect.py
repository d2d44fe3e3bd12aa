"""BlazeFace (MediaPipe short-range face detector): anchors, decoding, weighted NMS.

The model sees a 128x128 letterboxed RGB image in [-1, 1] and returns, for each
of 896 anchors, 16 regressors (box centre, size, six key points) and a score
logit. Anchors follow MediaPipe's SSD anchor options for this model: strides
8, 16, 16, 16 (layers of one stride share a grid), two anchors per layer and
cell, fixed size 1.
"""

from dataclasses import dataclass

import numpy as np

INPUT_SIZE = 128
STRIDES = (8, 16, 16, 16)
ANCHORS_PER_LAYER = 2

#: key point order of BlazeFace (the subject's right eye is on the image's left).
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear")


@dataclass(frozen=True)
class Detection:
    """One face: box (x0, y0, x1, y1) and six key points in image pixels, score 0..1."""

    box: tuple[float, float, float, float]
    keypoints: np.ndarray  # [6, 2]
    score: float

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return self.box[2] - self.box[0]


def anchors(input_size: int = INPUT_SIZE, strides: tuple[int, ...] = STRIDES) -> np.ndarray:
    """Anchor centres [N, 2] (x, y) in 0..1, in the model's output order."""
    out: list[tuple[float, float]] = []
    layer = 0
    while layer < len(strides):
        stride, repeats = strides[layer], 0
        while layer < len(strides) and strides[layer] == stride:
            repeats += ANCHORS_PER_LAYER
            layer += 1
        cells = -(-input_size // stride)
        for y in range(cells):
            for x in range(cells):
                out.extend([((x + 0.5) / cells, (y + 0.5) / cells)] * repeats)
    return np.array(out, dtype=np.float64)


def decode(
    regressors: np.ndarray, logits: np.ndarray, anchor_xy: np.ndarray, min_score: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes [K, 4] (x0, y0, x1, y1), key points [K, 6, 2] and scores [K] in 0..1 model
    coordinates for the anchors scoring at least ``min_score``."""
    raw_logits = logits.reshape(-1)
    keep = raw_logits >= np.log(min_score / (1.0 - min_score))  # sigmoid only the survivors
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_logits[keep].astype(np.float64), -100, 100)))
    raw = regressors.reshape(-1, 16)[keep].astype(np.float64) / INPUT_SIZE
    centre = anchor_xy[keep]
    cx, cy = raw[:, 0] + centre[:, 0], raw[:, 1] + centre[:, 1]
    half_w, half_h = raw[:, 2] / 2, raw[:, 3] / 2
    boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
    points = raw[:, 4:].reshape(-1, 6, 2) + centre[:, None, :]
    return boxes, points, scores


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box with each of ``boxes`` (x0, y0, x1, y1)."""
    return iou_matrix(np.asarray(box)[None], boxes)[0]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union [len(a), len(b)] of two sets of boxes (x0, y0, x1, y1)."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(2)
    area_a = (a[:, 2:] - a[:, :2]).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).prod(1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-12)


def weighted_nms(
    boxes: np.ndarray, points: np.ndarray, scores: np.ndarray, iou_threshold: float
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted NMS: each cluster (IoU above the threshold with its best box)
    becomes the score-weighted mean of its boxes and key points, with the best score."""
    order = np.argsort(-scores, kind="stable")
    boxes, points, scores = boxes[order], points[order], scores[order]
    overlaps = iou_matrix(boxes, boxes) > iou_threshold  # a few dozen candidates at most
    alive = np.ones(len(scores), dtype=bool)
    out = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        members = alive & overlaps[i]
        members[i] = True
        weights = scores[members] / scores[members].sum()
        box = weights @ boxes[members]
        pts = np.tensordot(weights, points[members], axes=1)
        out.append((box, pts, float(scores[i])))
        alive &= ~members
    return out


def letterbox(width: int, height: int, size: int = INPUT_SIZE) -> tuple[float, float, float]:
    """Scale and (x, y) padding that fit a ``width`` x ``height`` image into ``size``^2."""
    scale = size / max(width, height)
    return scale, (size - width * scale) / 2, (size - height * scale) / 2
