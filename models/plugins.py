"""Model plugins chosen by the bundle's manifest, like Frigate's detectors.

Each manifest entry names a ``role`` (detector, landmarks, embedder, pad) and a
``type``; the plugin registered for that pair is built from the model file and
the entry's options. Issue 6 registers its presentation-attack model as
``register("pad", "minifasnet")``.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image

from models.errors import BundleError

if TYPE_CHECKING:
    from models.bundle import ModelSpec
    from models.face.detect import Detection
    from models.face.landmarks import FaceLandmarks

ROLES = ("detector", "landmarks", "keypoints", "embedder", "pad")


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


Factory = Callable[[bytes, "ModelSpec", int], Any]
_REGISTRY: dict[tuple[str, str], Factory] = {}


def register(role: str, type_name: str) -> Callable[[Factory], Factory]:
    """Class decorator: ``factory(model_bytes, spec, threads)`` builds the plugin."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")

    def deco(factory: Factory) -> Factory:
        _REGISTRY[(role, type_name)] = factory
        return factory

    return deco


def create(role: str, content: bytes, spec: "ModelSpec", threads: int) -> Any:
    """The plugin for ``spec.type`` in ``role``; ``BundleError`` if none is registered."""
    _load_builtins()
    try:
        factory = _REGISTRY[(role, spec.type)]
    except KeyError:
        known = sorted(t for r, t in _REGISTRY if r == role)
        raise BundleError(
            f"manifest {role} type {spec.type!r} is not known here: one of {known}"
        ) from None
    return factory(content, spec, threads)


def _load_builtins() -> None:
    import models.face.detector
    import models.face.embedder
    import models.face.keypoints
    import models.face.landmarks
    import models.face.sface
    import models.pad.minifasnet  # noqa: F401
