"""Put a MiniFASNet PAD model into a bundle (``lifecert-models build --pad-minifasnet``).

The reference ONNX files are named like Silent-Face-Anti-Spoofing's
(``2.7_80x80_MiniFASNetV2.onnx``, ``4_0_0_80x80_MiniFASNetV1SE.onnx``): the
crop scale is the name's first token. They are converted to one TFLite model
(``models.pad.convert``); the bundle ships only the TFLite file.
"""

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from models.bundle import InputSpec, Manifest, ModelSpec, SourceSpec, TensorSpec, write_manifest
from models.bundle import read_manifest as read_signed
from models.errors import ModelBuildError

FILE = "minifasnet_pad.tflite"
_NAME = re.compile(r"^(\d+)(?:[._](\d+))?(?:_\d+)*_(\d+)x(\d+)_(\w+)\.onnx$")


@dataclass(frozen=True)
class PadModel:
    """The converted model and its manifest entry."""

    data: bytes
    spec: ModelSpec


def scale_of(path: Path) -> float:
    """The crop scale in a MiniFASNet file name (``4_0_0_80x80_...`` -> 4.0)."""
    match = _NAME.match(path.name)
    if match is None:
        raise ModelBuildError(
            f"{path.name}: expected a MiniFASNet ONNX name like 2.7_80x80_MiniFASNetV2.onnx "
            "(crop scale first)"
        )
    return float(f"{match[1]}.{match[2] or 0}")


def pad_model(folder: Path) -> PadModel:
    """Convert every MiniFASNet ``*.onnx`` in ``folder`` into one TFLite PAD model."""
    from models.pad.convert import INPUT_SIZE, build_tflite

    paths = sorted(folder.glob("*.onnx"))
    if not paths:
        raise ModelBuildError(f"{folder}: no MiniFASNet .onnx files there")
    scales = [scale_of(p) for p in paths]
    data = build_tflite(paths)
    digest = hashlib.sha256(b"".join(hashlib.sha256(p.read_bytes()).digest() for p in paths))
    spec = ModelSpec(
        type="minifasnet",
        file=FILE,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        input=InputSpec(
            name="crops_bgr",
            shape=[1, INPUT_SIZE, INPUT_SIZE, 3 * len(paths)],
            layout="NHWC BGR, one 80x80 crop per scale side by side on the channel axis",
            normalisation="none: 0..255 floats",
        ),
        outputs=[TensorSpec(name="ensemble/mean", shape=[1, 3])],
        source=SourceSpec(
            package="Silent-Face-Anti-Spoofing (minivision) ONNX",
            version=digest.hexdigest()[:12],
            path=", ".join(p.name for p in paths),
            converted_by="models.pad.convert (lifecert)",
        ),
        licence="Apache-2.0",
        use="passive presentation-attack detection (printed photo, screen replay)",
        options={"scales": scales, "live_index": 1},
    )
    return PadModel(data, spec)


def add_pad(bundle: Path, folder: Path, signing_key: Path, public_key: Path) -> Manifest:
    """Verify ``bundle``, add (or replace) its PAD model from ``folder`` and re-sign it."""
    from models.tools.build import _version

    manifest = read_signed(bundle, public_key)
    pad = pad_model(folder)
    (bundle / FILE).write_bytes(pad.data)
    models = {**manifest.models, "pad": pad.spec}
    updated = manifest.model_copy(update={"models": models, "version": _version(models)})
    write_manifest(bundle, updated, signing_key)
    return updated
