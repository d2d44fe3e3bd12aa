"""dlib's face-recognition ResNet, converted to TFLite, as a plugin."""

from typing import TYPE_CHECKING

import numpy as np

from models.plugins import register
from models.runtime import TFLiteModel

if TYPE_CHECKING:
    from models.bundle import ModelSpec


@register("embedder", "dlib_resnet_v1")
class DlibResNetEmbedder:
    """128-d template of a 150x150 RGB chip (Euclidean metric, like dlib).

    With the manifest option ``flip_average`` the template is the mean of the chip's and its
    mirror image's (two invokes; LFW 8-fold 98.27% -> 98.71%).
    """

    def __init__(self, content: bytes, spec: "ModelSpec", threads: int = 1) -> None:
        self.model = TFLiteModel(content, spec.file, threads)
        self.chip_size = int(spec.options.get("chip_size", 150))
        self.padding = float(spec.options.get("padding", 0.25))
        self.flip_average = bool(spec.options.get("flip_average", False))

    def network(self, chip: np.ndarray) -> np.ndarray:
        """One pass of the network (what dlib's ``compute_face_descriptor`` computes)."""
        return self.model.run(chip[None].astype(np.float32))[0][0]

    def embed(self, chip: np.ndarray) -> np.ndarray:
        """The template of one chip (uint8 RGB, ``chip_size`` square)."""
        template = self.network(chip)
        if self.flip_average:
            template = (template + self.network(chip[:, ::-1])) / 2
        return template
