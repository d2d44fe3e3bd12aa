"""The BlazeFace short-range detector as a plugin."""

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from models.face.detect import INPUT_SIZE, Detection, anchors, decode, letterbox, weighted_nms
from models.runtime import TFLiteModel

if TYPE_CHECKING:
    from models.bundle import ModelSpec


class BlazeFaceDetector:
    """Faces in an RGB image: letterbox to 128x128, [-1, 1], decode, weighted NMS."""

    def __init__(self, content: bytes, spec: "ModelSpec", threads: int = 1) -> None:
        self.model = TFLiteModel(content, spec.file, threads)
        self.min_score = float(spec.options.get("min_score", 0.5))
        self.iou_threshold = float(spec.options.get("nms_iou", 0.3))
        self._anchors = anchors()
        self._input = np.empty((1, INPUT_SIZE, INPUT_SIZE, 3), np.float32)

    def prepare(
        self, image: Image.Image, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, tuple[float, float, float]]:
        """The model input (written into ``out`` when given) and the letterbox (scale, pad x,
        pad y)."""
        scale, px, py = letterbox(*image.size)
        w, h = round(image.width * scale), round(image.height * scale)
        if scale <= 0.5:  # nearest: reads a fraction of the frame, where a box filter reads
            # all of it at 20x the cost; the mesh's landmarks are the same (bench_models_pipeline)
            small = image.resize((w, h), Image.Resampling.NEAREST)
        elif image.size != (w, h):
            small = image.resize((w, h), Image.Resampling.BILINEAR)
        else:
            small = image
        tensor = np.empty((1, INPUT_SIZE, INPUT_SIZE, 3), np.float32) if out is None else out
        tensor.fill(-1.0)
        x0, y0 = int(px), int(py)
        inner = tensor[0, y0 : y0 + h, x0 : x0 + w]
        np.multiply(np.asarray(small), np.float32(1.0 / 127.5), out=inner, casting="unsafe")
        inner -= 1.0
        return tensor, (w / image.width, float(x0), float(y0))

    def detect(self, image: Image.Image) -> list[Detection]:
        """Every face scoring at least ``min_score``, best first, in image coordinates."""
        tensor, (scale, px, py) = self.prepare(image, self._input)
        regressors, logits = self.model.run(tensor)
        boxes, points, scores = decode(regressors, logits, self._anchors, self.min_score)
        if not len(scores):
            return []
        shift = np.array([px, py])
        faces = []
        for box, pts, score in weighted_nms(boxes, points, scores, self.iou_threshold):
            b = (box.reshape(2, 2) * INPUT_SIZE - shift) / scale
            p = (pts * INPUT_SIZE - shift) / scale
            x0, y0, x1, y1 = b.ravel().tolist()
            faces.append(Detection((x0, y0, x1, y1), p, score))
        return faces
