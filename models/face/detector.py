"""The BlazeFace short-range detector as a plugin."""

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from models.face.detect import INPUT_SIZE, Detection, anchors, decode, letterbox, weighted_nms
from models.plugins import register
from models.runtime import TFLiteModel

if TYPE_CHECKING:
    from models.bundle import ModelSpec


@register("detector", "blazeface_short_range")
class BlazeFaceDetector:
    """Faces in an RGB image: letterbox to 128x128, [-1, 1], decode, weighted NMS."""

    def __init__(self, content: bytes, spec: "ModelSpec", threads: int = 1) -> None:
        self.model = TFLiteModel(content, spec.file, threads)
        self.min_score = float(spec.options.get("min_score", 0.5))
        self.iou_threshold = float(spec.options.get("nms_iou", 0.3))
        self._anchors = anchors()

    def prepare(self, image: Image.Image) -> tuple[np.ndarray, tuple[float, float, float]]:
        """The model input and the letterbox (scale, pad x, pad y)."""
        scale, px, py = letterbox(*image.size)
        w, h = round(image.width * scale), round(image.height * scale)
        factor = int(1 / scale)
        small = image.reduce(factor) if factor >= 2 else image  # box filter, fast
        if small.size != (w, h):
            small = small.resize((w, h), Image.Resampling.BILINEAR)
        canvas = np.full((INPUT_SIZE, INPUT_SIZE, 3), -1.0, np.float32)
        x0, y0 = int(px), int(py)
        canvas[y0 : y0 + h, x0 : x0 + w] = np.asarray(small, np.float32) * (1.0 / 127.5) - 1.0
        return canvas[None], (w / image.width, float(x0), float(y0))

    def detect(self, image: Image.Image) -> list[Detection]:
        """Every face scoring at least ``min_score``, best first, in image coordinates."""
        tensor, (scale, px, py) = self.prepare(image)
        regressors, logits = self.model.run(tensor)
        boxes, points, scores = decode(regressors, logits, self._anchors, self.min_score)
        faces = []
        for box, pts, score in weighted_nms(boxes, points, scores, self.iou_threshold):
            b = (box * INPUT_SIZE - [px, py, px, py]) / scale
            p = (pts * INPUT_SIZE - [px, py]) / scale
            faces.append(Detection((b[0], b[1], b[2], b[3]), p, score))
        return faces
