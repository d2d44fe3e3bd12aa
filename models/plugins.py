"""Model plugins chosen by the bundle's manifest, like Frigate's detectors.

Each manifest entry names a ``role`` (detector, landmarks, keypoints, embedder, pad) and a
``type``; :data:`PLUGINS` is the one table from that pair to the class built from the
model file and the entry's options. A new model type is a class implementing its role's
interface (``models.interfaces``) plus one line here; the plugin modules never import this
module, so the table imports them without a cycle.
"""

from collections.abc import Mapping
from typing import Any

from models.bundle import ModelSpec, Role
from models.errors import BundleError
from models.face.detector import BlazeFaceDetector
from models.face.embedder import DlibResNetEmbedder
from models.face.keypoints import YuNetKeypoints
from models.face.landmarks import FaceMeshLandmarker
from models.face.sface import SFaceEmbedder
from models.interfaces import Factory
from models.pad.minifasnet import MiniFASNet

PLUGINS: Mapping[tuple[Role, str], Factory] = {
    ("detector", "blazeface_short_range"): BlazeFaceDetector,
    ("landmarks", "face_mesh"): FaceMeshLandmarker,
    ("keypoints", "yunet"): YuNetKeypoints,
    ("embedder", "dlib_resnet_v1"): DlibResNetEmbedder,
    ("embedder", "sface"): SFaceEmbedder,
    ("pad", "minifasnet"): MiniFASNet,
}


def create(role: Role, content: bytes, spec: ModelSpec, threads: int) -> Any:
    """The plugin for ``spec.type`` in ``role``; ``BundleError`` if there is none."""
    try:
        factory = PLUGINS[(role, spec.type)]
    except KeyError:
        known = sorted(t for r, t in PLUGINS if r == role)
        raise BundleError(
            f"manifest {role} type {spec.type!r} is not known here: one of {known}"
        ) from None
    return factory(content, spec, threads)
