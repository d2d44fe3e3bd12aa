"""models/thresholds.toml: face thresholds per bundle version, score thresholds per scorer,
and the thresholds a build signs."""

import tomllib
from pathlib import Path

import pytest

from models import thresholds, vein
from models.bundle import (
    InputSpec,
    ModelSpec,
    ScoreThreshold,
    SourceSpec,
    TensorSpec,
    Threshold,
    bundle_version,
    face_version,
)
from models.errors import ModelBuildError
from models.tools.build import signed_thresholds

LIVE = Threshold(metric="euclidean_unit", distance=1.07, target_fmr=1e-4, calibrated_on="t")
CARD = Threshold(metric="euclidean_unit", distance=1.13, target_fmr=1e-3, calibrated_on="t")
VEIN = ScoreThreshold(
    metric="miura", score=0.19, scorer=vein.scorer(), target_fmr=1e-3, calibrated_on="t"
)
DEFAULT = Threshold(metric="euclidean_unit", distance=1.0, calibrated_on="model default")


def spec(file: str, sha: str) -> ModelSpec:
    return ModelSpec(
        type="t", file=file, sha256=sha * 64, size=1,
        input=InputSpec(name="in", shape=[1], layout="N", normalisation="none"),
        outputs=[TensorSpec(name="out", shape=[1])],
        source=SourceSpec(package="p", version="1", path=file), licence="x", use="tests",
    )  # fmt: skip


FACE = {"detector": spec("det.tflite", "a"), "embedder": spec("emb.tflite", "b")}


def test_face_and_vein_sections_are_kept_apart(tmp_path: Path) -> None:
    path = tmp_path / "thresholds.toml"
    thresholds.save(path, face={"live": LIVE, "card_photo": CARD}, bundle_version="v1")
    thresholds.save(path, scores={"vein": VEIN})
    assert thresholds.load(path, "v1", {"vein": vein.scorer()}) == {
        "live": LIVE, "card_photo": CARD, "vein": VEIN,
    }  # fmt: skip
    # other face models: their thresholds do not apply, the vein one still does
    assert thresholds.load(path, "v2", {"vein": vein.scorer()}) == {"vein": VEIN}
    # another matcher: the vein threshold does not apply
    assert thresholds.load(path, "v1", {"vein": "another matcher"}) == {
        "live": LIVE, "card_photo": CARD,
    }  # fmt: skip
    # face thresholds of a new version replace the old version's, the vein section stays
    thresholds.save(path, face={"live": LIVE}, bundle_version="v2")
    doc = tomllib.loads(path.read_text())
    assert doc["bundle_version"] == "v2" and "card_photo" not in doc and "vein" in doc
    with pytest.raises(ValueError, match="bundle version"):
        thresholds.save(path, face={"live": LIVE})
    assert thresholds.load(tmp_path / "absent.toml", "v1", {"vein": vein.scorer()}) == {}


def test_a_build_signs_the_vein_threshold_and_needs_one(tmp_path: Path) -> None:
    path = tmp_path / "thresholds.toml"
    thresholds.save(path, face={"live": LIVE}, bundle_version=face_version(FACE))
    with pytest.raises(
        ModelBuildError, match=r"no vein threshold .*`python -m models\.vein evaluate"
    ):
        signed_thresholds(FACE, DEFAULT, path)
    thresholds.save(path, scores={"vein": VEIN})
    signed = signed_thresholds(FACE, DEFAULT, path)
    assert signed == {"live": LIVE, "card_photo": DEFAULT, "vein": VEIN}


def test_a_pad_model_gets_its_default_unless_calibrated_for_it(tmp_path: Path) -> None:
    path = tmp_path / "thresholds.toml"
    with_pad = {**FACE, "pad": spec("pad.tflite", "c")}
    assert face_version(with_pad) == face_version(FACE) == bundle_version(FACE)
    thresholds.save(path, face={"live": LIVE}, bundle_version=face_version(FACE))
    thresholds.save(path, scores={"vein": VEIN})
    signed = signed_thresholds(with_pad, DEFAULT, path)
    assert signed["live"] == LIVE  # the PAD model does not cost the face calibration
    pad = signed["pad"]
    assert isinstance(pad, ScoreThreshold) and pad.score == 0.5
    assert pad.scorer == f"pad.tflite@{'c' * 16}" and "model default" in pad.calibrated_on
    tuned = pad.model_copy(update={"score": 0.8, "calibrated_on": "an attack set"})
    thresholds.save(path, scores={"pad": tuned})
    assert signed_thresholds(with_pad, DEFAULT, path)["pad"] == tuned
    other = {**FACE, "pad": spec("pad.tflite", "d")}  # other weights: the default again
    assert signed_thresholds(other, DEFAULT, path)["pad"].score == 0.5  # type: ignore[union-attr]
