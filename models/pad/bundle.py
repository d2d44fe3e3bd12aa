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

from models.bundle import (
    InputSpec,
    Manifest,
    ModelSpec,
    ScoreThreshold,
    SourceSpec,
    TensorSpec,
    bundle_version,
    face_version,
    write_manifest,
)
from models.bundle import read_manifest as read_signed
from models.errors import ModelBuildError

FILE = "minifasnet_pad.tflite"
#: the live class's mean probability a face needs: Silent-Face-Anti-Spoofing's own decision
#: (the live class wins when it holds half the probability). Not calibrated: the three
#: sample images here prove the wiring, they cannot measure error rates.
LIVE_PROBABILITY = 0.5
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


def default_threshold(spec: ModelSpec) -> ScoreThreshold:
    """The PAD threshold signed with the MiniFASNet ``spec`` until one is calibrated."""
    return ScoreThreshold(
        metric="live_probability",
        score=LIVE_PROBABILITY,
        scorer=spec.identity,
        calibrated_on="model default: the live class wins (Silent-Face-Anti-Spoofing's "
        "decision); not measured on any attack set",
    )


def add_pad(
    bundle: Path,
    folder: Path,
    signing_key: Path,
    public_key: Path,
    thresholds_file: Path | None = None,
) -> Manifest:
    """Verify ``bundle``, add (or replace) its PAD model from ``folder`` with its threshold
    (calibrated in ``thresholds_file`` for this model, else the default) and re-sign it."""
    from models import thresholds

    manifest = read_signed(bundle, public_key)
    pad = pad_model(folder)
    (bundle / FILE).write_bytes(pad.data)
    models = {**manifest.models, "pad": pad.spec}
    saved = thresholds.load(
        thresholds_file or thresholds.DEFAULT_PATH, face_version(models), {"pad": pad.spec.identity}
    )
    signed = {**manifest.thresholds, "pad": saved.get("pad") or default_threshold(pad.spec)}
    updated = Manifest.model_validate(
        {
            **manifest.model_dump(),
            "models": models,
            "version": bundle_version(models),
            "thresholds": signed,
        }
    )
    write_manifest(bundle, updated, signing_key)
    return updated
