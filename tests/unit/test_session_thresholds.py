"""The session's PAD and vein thresholds come from the signed bundle, not from config."""

import logging
from pathlib import Path

import numpy as np
import pytest

from common.config import Section, load
from common.errors import ConfigError
from edge.adapters.devices import pad_threshold, vein_threshold
from edge.session.model import Probe
from edge.session.settings import SessionSettings
from models import vein
from models.bundle import InputSpec, Manifest, ModelSpec, ScoreThreshold, SourceSpec, TensorSpec
from models.errors import BundleError

PAD = ModelSpec(
    type="minifasnet", file="minifasnet_pad.tflite", sha256="ab" * 32, size=1,
    input=InputSpec(name="in", shape=[1], layout="N", normalisation="none"),
    outputs=[TensorSpec(name="out", shape=[1, 3])],
    source=SourceSpec(package="p", version="1", path="x"), licence="Apache-2.0", use="tests",
)  # fmt: skip


def manifest(**thresholds: ScoreThreshold) -> Manifest:
    return Manifest(
        name="t", version="1", created="2026-01-01T00:00:00+00:00", models={"pad": PAD},
        thresholds=thresholds,  # type: ignore[arg-type]
    )  # fmt: skip


def score(scorer: str, value: float) -> ScoreThreshold:
    metric = "miura" if scorer.startswith("models.vein") else "live_probability"
    return ScoreThreshold(metric=metric, score=value, scorer=scorer, calibrated_on="tests")


@pytest.mark.parametrize(
    ("score_", "threshold", "passed"),
    [(None, None, True), (0.7, 0.6, True), (0.6, 0.6, True), (0.5, 0.6, False), (0.9, None, False)],
)
def test_a_pad_score_passes_only_against_its_threshold(
    score_: float | None, threshold: float | None, passed: bool
) -> None:
    assert Probe(np.zeros(2), score_, pad_threshold=threshold).pad_passed is passed


def test_the_pad_threshold_is_the_signed_one_for_this_pad_model() -> None:
    assert pad_threshold(manifest(pad=score(PAD.identity, 0.62))) == 0.62
    with pytest.raises(BundleError, match="no pad threshold in its signed manifest"):
        pad_threshold(manifest())
    with pytest.raises(BundleError, match="not its PAD model"):
        pad_threshold(manifest(pad=score("other.tflite@0000000000000000", 0.62)))
    bare = manifest().model_copy(update={"models": {}})
    assert pad_threshold(bare) is None  # no PAD model: nothing to decide


def test_the_vein_threshold_is_the_signed_one_for_this_matcher() -> None:
    assert vein_threshold(manifest(vein=score(vein.scorer(), 0.19))) == 0.19
    with pytest.raises(BundleError, match=r"no vein threshold .*`make models`"):
        vein_threshold(manifest())
    other = vein.scorer(vein.VeinParams(sigma=2.0))
    with pytest.raises(BundleError, match="this terminal matches with"):
        vein_threshold(manifest(vein=score(other, 0.19)))


class _Edge(Section):
    session: SessionSettings = SessionSettings()


def test_an_old_pad_threshold_key_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = tmp_path / "edge.toml"
    cfg.write_text("[session]\nattempts = 2\npad_threshold = 0.9\n")
    with caplog.at_level(logging.WARNING):
        loaded = load(_Edge, cfg, "LIFECERT_TEST", environ={})
    assert loaded.session.attempts == 2
    assert not hasattr(loaded.session, "pad_threshold")
    assert "pad_threshold is ignored" in caplog.text and "thresholds.pad" in caplog.text
    # the same through the environment; other unknown keys are still errors
    env = {"LIFECERT_TEST__SESSION__PAD_THRESHOLD": "0.2"}
    assert load(_Edge, None, "LIFECERT_TEST", environ=env).session.attempts == 3
    cfg.write_text("[session]\npad_treshold = 0.9\n")
    with pytest.raises(ConfigError, match="pad_treshold"):
        load(_Edge, cfg, "LIFECERT_TEST", environ={})
