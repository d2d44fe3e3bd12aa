"""MiniFASNet passive presentation-attack detection as a ``pad`` plugin.

The face box from the detector is widened by each scale of the manifest
(``scales``, default 2.7 and 4.0: V2 and V1SE), shifted to stay inside the
image, resized to 80x80 and fed as BGR 0..255 (how the models were trained).
"""

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from models.runtime import TFLiteModel

if TYPE_CHECKING:
    from models.bundle import ModelSpec
    from models.face.detect import Detection


def crop_box(
    box: tuple[float, float, float, float], width: int, height: int, scale: float
) -> tuple[int, int, int, int]:
    """The box scaled by ``scale`` about its centre, moved (not cut) to fit the image."""
    w, h = box[2] - box[0], box[3] - box[1]
    scale = min((height - 1) / h, (width - 1) / w, scale)
    cx, cy = box[0] + w / 2, box[1] + h / 2
    x0, y0 = cx - w * scale / 2, cy - h * scale / 2
    x1, y1 = cx + w * scale / 2, cy + h * scale / 2
    if x0 < 0:
        x1, x0 = x1 - x0, 0.0
    if y0 < 0:
        y1, y0 = y1 - y0, 0.0
    if x1 > width - 1:
        x0, x1 = x0 - (x1 - width + 1), width - 1.0
    if y1 > height - 1:
        y0, y1 = y0 - (y1 - height + 1), height - 1.0
    return int(x0), int(y0), int(x1), int(y1)


class MiniFASNet:
    """Probability that a detected face is live (mean of the ensemble's softmaxes)."""

    def __init__(self, content: bytes, spec: "ModelSpec", threads: int = 1) -> None:
        self.model = TFLiteModel(content, spec.file, threads)
        self.scales = [float(s) for s in spec.options.get("scales", [2.7, 4.0])]
        self.live_index = int(spec.options.get("live_index", 1))
        self.size = self.model.input_shape[1]

    def crops(self, image: Image.Image, detection: "Detection") -> np.ndarray:
        """The model input [1, size, size, 3 x scales]: BGR crops side by side."""
        out = []
        for scale in self.scales:
            x0, y0, x1, y1 = crop_box(detection.box, image.width, image.height, scale)
            crop = image.crop((x0, y0, x1 + 1, y1 + 1))
            small = crop.resize((self.size, self.size), Image.Resampling.BILINEAR)
            out.append(np.asarray(small, np.float32)[:, :, ::-1])
        return np.concatenate(out, axis=2)[None]

    def live_score(self, image: Image.Image, detection: "Detection") -> float:
        """0..1, higher is more likely a live face."""
        return float(self.model.run(self.crops(image, detection))[0][0, self.live_index])
