"""MiniFASNet: crop geometry, file names, ONNX -> TFLite conversion against onnxruntime."""

from pathlib import Path

import numpy as np
import pytest

from models.errors import ModelBuildError
from models.pad.bundle import scale_of
from models.pad.minifasnet import crop_box


def test_crop_is_the_box_scaled_about_its_centre() -> None:
    assert crop_box((100, 100, 140, 140), 640, 480, 2.0) == (80, 80, 160, 160)


def test_crop_is_moved_inside_the_image_not_cut() -> None:
    x0, y0, x1, y1 = crop_box((0, 10, 40, 50), 640, 480, 3.0)
    assert (x0, y0) == (0, 0) and x1 - x0 == 120 and y1 - y0 == 120


def test_crop_scale_is_capped_by_the_image() -> None:
    x0, y0, x1, y1 = crop_box((200, 100, 400, 300), 640, 480, 4.0)
    assert y1 - y0 <= 479 and x0 >= 0 and x1 <= 639


def test_scale_comes_from_the_file_name() -> None:
    assert scale_of(Path("2.7_80x80_MiniFASNetV2.onnx")) == 2.7
    assert scale_of(Path("4_0_0_80x80_MiniFASNetV1SE.onnx")) == 4.0
    with pytest.raises(ModelBuildError, match="crop scale first"):
        scale_of(Path("MiniFASNetV2.onnx"))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_converted_ensemble_matches_onnxruntime(shared_data: Path) -> None:
    pytest.importorskip("onnx", reason="onnx (build extra) not installed")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (dev extra) not installed")
    from models.pad.convert import build_tflite
    from models.runtime import TFLiteModel

    folder = shared_data / "models" / "reference" / "minifasnet"
    paths = sorted(folder.glob("*.onnx"))
    if len(paths) != 2:
        pytest.skip(f"MiniFASNet V2 and V1SE ONNX files not found in {folder}")
    model = TFLiteModel(build_tflite(paths), "pad")
    rng = np.random.default_rng(7)
    for _ in range(3):
        x = rng.uniform(0, 255, (1, 80, 80, 6)).astype(np.float32)
        expected = np.zeros((1, 3))
        for i, path in enumerate(paths):
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            chw = np.ascontiguousarray(x[..., 3 * i : 3 * i + 3].transpose(0, 3, 1, 2))
            expected += _softmax(session.run(None, {"input": chw})[0]) / len(paths)
        got = model.run(x)[0]
        assert got.shape == (1, 3)
        np.testing.assert_allclose(got, expected, atol=1e-5)
