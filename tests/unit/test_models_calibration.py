"""The checked-in int8 ranges file (models.tools.calibration): refused unless it fits."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from models.cli import main
from models.errors import ModelBuildError

pytest.importorskip("ai_edge_litert", reason="ai-edge-litert (edge extra) not installed")
pytest.importorskip("tqdm", reason="build extra not installed")

from models.tools import calibration
from models.tools.quantize import activation_ranges, quantize_int8
from tests.unit.test_quantize import _chips, _graph


@pytest.fixture(scope="module")
def model() -> bytes:
    return _graph(np.random.default_rng(20))


def _save(path: Path, model: bytes, ranges: calibration.Ranges) -> None:
    calibration.save(path, model, ranges, 3, "random chips", "pytest")


def test_ranges_round_trip_for_the_model_they_were_calibrated_on(
    model: bytes, tmp_path: Path
) -> None:
    ranges = activation_ranges(model, _chips(np.random.default_rng(21), 3))
    path = tmp_path / "r.json"
    _save(path, model, ranges)
    assert calibration.load(path, model) == ranges  # exact: the build stays reproducible
    doc = json.loads(path.read_text())
    assert (doc["samples"], doc["source"], doc["command"]) == (3, "random chips", "pytest")
    quantize_int8(model, calibration.load(path, model))


def test_ranges_of_another_float_model_are_refused(model: bytes, tmp_path: Path) -> None:
    ranges = activation_ranges(model, _chips(np.random.default_rng(22), 2))
    path = tmp_path / "r.json"
    _save(path, model, ranges)
    other = _graph(np.random.default_rng(23))  # same names, other weights
    with pytest.raises(ModelBuildError, match=r"another float model.*lifecert-models calibrate"):
        calibration.load(path, other)


def test_ranges_without_a_tensor_of_the_model_are_refused(model: bytes, tmp_path: Path) -> None:
    ranges = activation_ranges(model, _chips(np.random.default_rng(24), 2))
    del ranges["prelu2"]
    path = tmp_path / "r.json"
    _save(path, model, ranges)
    with pytest.raises(ModelBuildError, match=r"without a range \(prelu2\).*calibrate"):
        quantize_int8(model, calibration.load(path, model))


def test_a_missing_or_broken_ranges_file_says_how_to_make_one(model: bytes, tmp_path: Path) -> None:
    with pytest.raises(ModelBuildError, match="not found: run `lifecert-models calibrate"):
        calibration.load(tmp_path / "absent.json", model)
    (tmp_path / "broken.json").write_text('{"ranges": {}}')
    with pytest.raises(ModelBuildError, match=r"not a calibration file.*calibrate"):
        calibration.load(tmp_path / "broken.json", model)


def test_calibrate_without_the_face_data_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["calibrate", "--data", str(tmp_path / "lfw")])
    assert result.exit_code == 2
    assert "no images/ folder and pairs.txt" in result.output
    assert "Traceback" not in result.output
