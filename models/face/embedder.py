"""dlib's face-recognition ResNet, converted to TFLite, as a plugin."""

from typing import TYPE_CHECKING

import numpy as np

from models.plugins import register
from models.runtime import TFLiteModel

if TYPE_CHECKING:
    from models.bundle import ModelSpec


def unit(template: np.ndarray) -> np.ndarray:
    """``template`` scaled to length 1 (a zero template stays zero)."""
    norm = float(np.linalg.norm(template))
    return template / norm if norm > 0 else template


@register("embedder", "dlib_resnet_v1")
class DlibResNetEmbedder:
    """128-d templates of a 150x150 RGB chip, compared by Euclidean distance.

    Manifest options: ``unit_length`` scales every template to length 1 (on LFW, FNMR at
    FMR 1e-4 22.1% -> 16.6%); ``mirror_references`` makes a reference (a template kept to
    match later probes against) the mean of the chip's and its mirror image's templates,
    while a live probe stays one pass of the network.
    """

    def __init__(self, content: bytes, spec: "ModelSpec", threads: int = 1) -> None:
        self.model = TFLiteModel(content, spec.file, threads)
        self.chip_size = int(spec.options.get("chip_size", 150))
        self.padding = float(spec.options.get("padding", 0.25))
        self.unit_length = bool(spec.options.get("unit_length", False))
        self.mirror_references = bool(spec.options.get("mirror_references", False))

    def network(self, chip: np.ndarray) -> np.ndarray:
        """One pass of the network (what dlib's ``compute_face_descriptor`` computes)."""
        return self.model.run(chip[None].astype(np.float32))[0][0]

    def _finish(self, template: np.ndarray) -> np.ndarray:
        return unit(template) if self.unit_length else template

    def embed(self, chip: np.ndarray) -> np.ndarray:
        """The probe template of one chip (uint8 RGB, ``chip_size`` square): one pass."""
        return self._finish(self.network(chip))

    def reference(self, chip: np.ndarray) -> np.ndarray:
        """The template to keep as a reference (mirror-averaged when the manifest says so)."""
        template = self.network(chip)
        if self.mirror_references:
            template = (template + self.network(chip[:, ::-1])) / 2
        return self._finish(template)
