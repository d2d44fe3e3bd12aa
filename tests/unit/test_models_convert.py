"""The TFLite writer against numpy, and dlib's serialisation primitives."""

import numpy as np
import pytest

from models.errors import ModelBuildError
from models.runtime import TFLiteModel
from models.tools.convert import RGB_MEAN, _fold, _fold_input
from models.tools.dlib_reader import Affine, Conv, _Stream
from models.tools.tflite_writer import GraphWriter

pytest.importorskip("ai_edge_litert", reason="ai-edge-litert (edge extra) not installed")


def _conv_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """Cross-correlation, NHWC input, weights [out, h, w, in]."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    k = w.shape[1]
    oh = (x.shape[1] - k) // stride + 1
    ow = (x.shape[2] - k) // stride + 1
    out = np.zeros((1, oh, ow, w.shape[0]))
    for i in range(oh):
        for j in range(ow):
            patch = x[0, i * stride : i * stride + k, j * stride : j * stride + k, :]
            out[0, i, j] = np.tensordot(w, patch, axes=([1, 2, 3], [0, 1, 2])) + b
    return out


def test_written_graph_computes_what_numpy_computes() -> None:
    rng = np.random.default_rng(3)
    w1 = rng.normal(size=(4, 3, 3, 2)).astype(np.float32)
    b1 = rng.normal(size=4).astype(np.float32)
    w2 = rng.normal(size=(4, 3, 3, 4)).astype(np.float32)
    b2 = rng.normal(size=4).astype(np.float32)
    fc = rng.normal(size=(5, 6)).astype(np.float32)
    g = GraphWriter("test")
    x = g.input("x", (1, 9, 9, 2))
    a = g.conv2d(x, w1, b1, stride=2, same=False, relu=True, name="a")  # 4x4x4
    h = g.conv2d(a, w2, b2, stride=1, same=True, relu=False, name="b")  # 4x4x4
    skip = g.pool(a, 2, 2, average=True, name="pool")  # 2x2x4
    skip = g.pad(skip, [(0, 0), (0, 2), (0, 2), (0, 2)], "pad")  # 4x4x6
    h = g.pad(h, [(0, 0), (0, 0), (0, 0), (0, 2)], "pad_h")
    y = g.add(h, skip, relu=True, name="add")
    y = g.spatial_mean(g.pool(y, 1, 1, average=False, name="id"), "mean")
    y = g.dense(y, fc, "fc")
    model = TFLiteModel(g.finish([y]), "test")
    inp = rng.uniform(-1, 1, (1, 9, 9, 2)).astype(np.float32)
    got = model.run(inp)[0]

    ra = np.maximum(_conv_ref(inp, w1, b1, 2, 0), 0)
    rh = _conv_ref(ra, w2, b2, 1, 1)
    rskip = ra.reshape(1, 2, 2, 2, 2, 4).mean(axis=(2, 4))
    rs = np.zeros((1, 4, 4, 6))
    rs[:, :2, :2, :4] = rskip
    rh6 = np.zeros((1, 4, 4, 6))
    rh6[..., :4] = rh
    ry = np.maximum(rh6 + rs, 0).mean(axis=(1, 2)) @ fc.T
    assert got.shape == (1, 5)
    assert got == pytest.approx(ry, rel=1e-4, abs=1e-4)


def test_affine_and_input_normalisation_fold_into_the_convolution() -> None:
    rng = np.random.default_rng(5)
    conv = Conv(rng.normal(size=(3, 3, 2, 2)), rng.normal(size=3), stride=1, padding=0)
    affine = Affine(rng.uniform(0.5, 2, 3), rng.normal(size=3))
    x = rng.uniform(0, 255, (1, 4, 4, 3))
    w, b = _fold_input(*_fold(conv, affine))
    folded = _conv_ref(x, w, b, 1, 0)
    raw = _conv_ref((x - RGB_MEAN) / 256, conv.weights.transpose(0, 2, 3, 1), conv.bias, 1, 0)
    assert folded == pytest.approx(raw * affine.gamma + affine.beta, rel=1e-9, abs=1e-9)


def test_dlib_integer_and_tensor_encoding() -> None:
    values = np.array([1.5, -2.0, 0.25], dtype="<f4")
    data = (
        bytes([1, 7])  # 7
        + bytes([0x82, 0x00, 0x01])  # -256
        + bytes([0])  # 0
        + bytes([1, 2, 1, 3, 1, 1, 1, 1, 1, 1])  # tensor v2, 3x1x1x1
        + values.tobytes()
    )
    s = _Stream(data)
    assert (s.integer(), s.integer(), s.integer()) == (7, -256, 0)
    assert s.tensor().ravel() == pytest.approx(values)
    assert s.pos == len(data)


def test_dlib_stream_refuses_a_bad_integer_header() -> None:
    with pytest.raises(ModelBuildError, match="bad integer header"):
        _Stream(bytes([0x0F, 0])).integer()
