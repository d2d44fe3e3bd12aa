"""dlib's face-recognition ResNet, converted to TFLite, as a plugin."""

from typing import TYPE_CHECKING

import numpy as np

from models.plugins import register
from models.runtime import TFLiteModel

if TYPE_CHECKING:
    from models.bundle import ModelSpec


@register("embedder", "dlib_resnet_v1")
class DlibResNetEmbedder:
    """128-d template of a 150x150 RGB chip (Euclidean metric, like dlib)."""

    def __init__(self, content: bytes, spec: "ModelSpec", threads: int = 1) -> None:
        self.model = TFLiteModel(content, spec.file, threads)
        self.chip_size = int(spec.options.get("chip_size", 150))
        self.padding = float(spec.options.get("padding", 0.25))

    def embed(self, chip: np.ndarray) -> np.ndarray:
        """The template of one chip (uint8 RGB, ``chip_size`` square)."""
        return self.model.run(chip[None].astype(np.float32))[0][0]

    def embed_batch(self, chips: np.ndarray) -> np.ndarray:
        """Templates of [N, size, size, 3] chips, one invoke each."""
        return np.stack([self.embed(c) for c in chips]) if len(chips) else np.zeros((0, 128))
