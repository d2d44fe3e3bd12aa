"""What each model role does, whatever network fills it (like Frigate's ``DetectionApi``).

The pipeline and the tools talk to these; ``models.plugins`` builds the implementation the
bundle's manifest names. This module imports no implementation, so every plugin can
import it.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from models.bundle import ModelSpec
    from models.face.detect import Detection
    from models.face.landmarks import FaceLandmarks

Factory = Callable[[bytes, "ModelSpec", int], Any]
"""``factory(model_bytes, spec, threads)`` builds a plugin (each plugin class is one)."""


class Detector(Protocol):
    """Finds faces in an RGB image."""

    def detect(self, image: Image.Image) -> list["Detection"]: ...


class Landmarker(Protocol):
    """Dense landmarks of one detected face."""

    def landmarks(self, image: Image.Image, detection: "Detection") -> "FaceLandmarks | None": ...


class Keypoints(Protocol):
    """Five alignment points of the face whose rough points [5, 2] the mesh gave."""

    def refine(self, image: Image.Image, rough: np.ndarray) -> np.ndarray | None: ...


class Embedder(Protocol):
    """Template of an aligned face chip; the embedder owns the chip's geometry."""

    def chip(
        self, image: Image.Image, landmarks: "FaceLandmarks", keypoints: Keypoints | None = None
    ) -> np.ndarray:
        """The aligned face chip (uint8 RGB) this embedder's network expects."""
        ...

    def embed(self, chip: np.ndarray) -> np.ndarray:
        """The template of a live probe."""
        ...

    def reference(self, chip: np.ndarray) -> np.ndarray:
        """The template to keep as a reference (may cost more than a probe's)."""
        ...

    def network(self, chip: np.ndarray) -> np.ndarray:
        """One pass of the network, without test-time augmentation."""
        ...


class PresentationAttackDetector(Protocol):
    """Passive liveness: probability that the face is live (issue 6)."""

    def live_score(self, image: Image.Image, detection: "Detection") -> float: ...
