"""The face pipeline on the terminal: a verified bundle, loaded once, used per frame.

Example::

    with FacePipeline.open(Path("var/models"), Path("models-sign.pub.pem")) as faces:
        face = faces.analyse(image)            # detection, landmarks, chip, template, quality
        reference = faces.card_photo(photo)    # a reference: its template is faces.reference()
        match = faces.compare(face.template, reference.template, mode="card_photo")
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageFilter

from models import interfaces, plugins
from models.bundle import Manifest, load_bundle
from models.errors import ModelError
from models.face.compare import Match, compare
from models.face.detect import Detection
from models.face.landmarks import FaceLandmarks
from models.face.quality import Quality, measure

Mode = Literal["live", "card_photo"]

#: Gaussian blur (pixels) that smooths a card photo's JPEG blocks before analysis: on 250
#: LFW card photos (102x126, JPEG q20) FNMR at FMR 1e-3 falls from 24.6% to 21.6% (radius
#: 0.5: 21.8%, 1.2: 28.9%); upscaling the photo first or degrading the live probe alike
#: did not help.
CARD_PHOTO_DEBLOCK = 0.8


@dataclass(frozen=True)
class Face:
    """Everything the terminal learns about the main face of one image."""

    detection: Detection
    landmarks: FaceLandmarks
    chip: np.ndarray
    template: np.ndarray
    quality: Quality


def as_image(image: Image.Image | np.ndarray) -> Image.Image:
    """A Pillow RGB image from Pillow or an HxWx3 uint8 array."""
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ModelError(f"expected an HxWx3 uint8 RGB image, got {array.shape} {array.dtype}")
    return Image.fromarray(array)


class FacePipeline:
    """Detector, landmarker, embedder (and optional keypoints and PAD models) chosen by the
    manifest."""

    def __init__(self, manifest: Manifest, contents: dict[str, bytes], threads: int = 1) -> None:
        self.manifest = manifest
        models = manifest.models
        for role in ("detector", "landmarks", "embedder"):
            if role not in models:
                raise ModelError(f"bundle {manifest.name} has no {role} model")
        self.detector: interfaces.Detector = plugins.create(
            "detector", contents["detector"], models["detector"], threads
        )
        self.landmarker: interfaces.Landmarker = plugins.create(
            "landmarks", contents["landmarks"], models["landmarks"], threads
        )
        self.embedder: interfaces.Embedder = plugins.create(
            "embedder", contents["embedder"], models["embedder"], threads
        )
        self.keypoints: interfaces.Keypoints | None = (
            plugins.create("keypoints", contents["keypoints"], models["keypoints"], threads)
            if "keypoints" in models
            else None
        )
        self.pad: Any = (  # an interfaces.PresentationAttackDetector, or None
            plugins.create("pad", contents["pad"], models["pad"], threads)
            if "pad" in models
            else None
        )

    @classmethod
    def open(cls, bundle_dir: Path, public_key: Path, threads: int = 1) -> "FacePipeline":
        """Verify the bundle at ``bundle_dir`` with ``public_key`` and load its models."""
        manifest, contents = load_bundle(bundle_dir, public_key)
        return cls(manifest, contents, threads)

    def __enter__(self) -> "FacePipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the interpreters (the pipeline is unusable afterwards)."""
        for name in ("detector", "landmarker", "keypoints", "embedder", "pad"):
            vars(self).pop(name, None)

    def detect(self, image: Image.Image | np.ndarray) -> list[Detection]:
        """Every face in the image, best first."""
        return self.detector.detect(as_image(image))

    def landmarks(
        self, image: Image.Image | np.ndarray, detection: Detection
    ) -> FaceLandmarks | None:
        """468 landmarks of one detected face (``None`` if the model sees no face there)."""
        return self.landmarker.landmarks(as_image(image), detection)

    def align(self, image: Image.Image | np.ndarray, landmarks: FaceLandmarks) -> np.ndarray:
        """The face chip the bundle's embedder expects (its own geometry)."""
        return self.embedder.chip(as_image(image), landmarks, self.keypoints)

    def embed(self, chip: np.ndarray) -> np.ndarray:
        """The template of a live probe's face chip (one pass of the network)."""
        return self.embedder.embed(chip)

    def reference(self, chip: np.ndarray) -> np.ndarray:
        """The template of a face chip kept as a reference (mirror-averaged if the bundle
        says so: it costs a second pass, once per certification)."""
        return self.embedder.reference(chip)

    def analyse(self, image: Image.Image | np.ndarray, *, reference: bool = False) -> Face | None:
        """The largest face: landmarks, chip, template (a probe's, or a reference's with
        ``reference``) and quality; ``None`` without a face."""
        img = as_image(image)
        detections = self.detector.detect(img)
        for det in sorted(detections, key=lambda d: -d.width):
            marks = self.landmarker.landmarks(img, det)
            if marks is None:
                continue
            chip = self.align(img, marks)
            quality = measure(chip, marks, det.width, len(detections))
            template = self.reference(chip) if reference else self.embed(chip)
            return Face(det, marks, chip, template, quality)
        return None

    def card_photo(self, image: Image.Image | np.ndarray) -> Face | None:
        """Like :meth:`analyse` for an ID-card photo (small, heavily compressed): the JPEG
        blocks are smoothed first and the template is a reference. Compare it in mode
        ``card_photo``."""
        smoothed = as_image(image).filter(ImageFilter.GaussianBlur(CARD_PHOTO_DEBLOCK))
        return self.analyse(smoothed, reference=True)

    def compare(self, probe: np.ndarray, reference: np.ndarray, mode: Mode = "live") -> Match:
        """Distance and decision with the manifest's threshold for ``mode``."""
        return compare(probe, reference, self.manifest.face_threshold(mode), mode)
