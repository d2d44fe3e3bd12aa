"""Post-training quantisation (models.tools.quantize) on a small graph with SFace's op mix."""

from typing import Any

import numpy as np
import pytest

from models.errors import ModelBuildError

pytest.importorskip("ai_edge_litert", reason="ai-edge-litert (edge extra) not installed")

from ai_edge_litert import schema_py_generated as fb
from ai_edge_litert.interpreter import Interpreter

from models.runtime import TFLiteModel
from models.tools.quantize import activation_ranges, quantize_int8, quantize_weights
from models.tools.tflite_writer import GraphWriter

SHAPE = (1, 16, 16, 3)


def _graph(rng: np.random.Generator, pool: bool = False) -> bytes:
    """Input scaling, conv, PReLU, padded strided depthwise, 1x1 conv, a residual add,
    per-channel multiply-add, flatten, fully connected: the ops of the converted SFace."""

    def w(*shape: int) -> np.ndarray:
        return rng.normal(0, 1 / np.sqrt(np.prod(shape[1:])), shape).astype(np.float32)

    def b(c: int) -> np.ndarray:
        return rng.normal(0, 0.1, c).astype(np.float32)

    g = GraphWriter("test")
    x = g.input("chip", SHAPE)
    h = g.add(x, g.const("minus", np.array([-127.5], np.float32)), False, "minus")
    h = g.mul(h, g.const("scale", np.array([0.0078125], np.float32)), "scaled")
    h = g.conv2d(h, w(8, 3, 3, 3), b(8), stride=1, same=True, relu=False, name="conv1")
    h = g.prelu(h, rng.uniform(-0.5, 1.1, 8).astype(np.float32), "prelu1")
    h = g.pad(h, [(0, 0), (1, 1), (1, 1), (0, 0)], "pad")
    h = g.depthwise(h, w(1, 3, 3, 8), b(8), stride=2, same=False, name="dw")
    h = g.prelu(h, rng.uniform(-0.5, 1.1, 8).astype(np.float32), "prelu2")
    r = g.conv2d(h, w(8, 1, 1, 8), b(8), stride=1, same=True, relu=False, name="conv2")
    h = g.add(h, r, False, "residual")
    h = g.mul(h, g.const("bn/scale", rng.uniform(0.5, 1.5, 8).astype(np.float32)), "bn/mul")
    h = g.add(h, g.const("bn/shift", b(8)), False, "bn")
    if pool:
        h = g.pool(h, 2, 2, average=True, name="pool")
    h = g.flatten(h, "flatten")
    h = g.linear(h, w(16, g.shapes[h][1]), b(16), "fc")
    return g.finish([h])


def _chips(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """Smooth random 'images' in 0..255, like chips rather than white noise."""
    low = rng.uniform(0, 255, (n, 4, 4, 3))
    return [np.kron(c, np.ones((4, 4, 1)))[None].astype(np.float32) for c in low]


def _cosines(a: TFLiteModel, b: TFLiteModel, inputs: list[np.ndarray]) -> np.ndarray:
    x = np.vstack([a.run(i)[0] for i in inputs])
    y = np.vstack([b.run(i)[0] for i in inputs])
    return (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)


def _int8(model: bytes, chips: list[np.ndarray]) -> bytes:
    return quantize_int8(model, activation_ranges(model, chips))


def _tensors(model: bytes) -> dict[str, Any]:
    graph = fb.ModelT.InitFromPackedBuf(bytearray(model), 0).subgraphs[0]
    return {t.name.decode(): t for t in graph.tensors}


def test_int8_model_is_close_to_the_float_model() -> None:
    rng = np.random.default_rng(5)
    model = _graph(rng)
    q8 = quantize_int8(model, activation_ranges(model, _chips(rng, 50)))
    flt, quant = TFLiteModel(model, "float"), TFLiteModel(q8, "int8")
    assert quant.input_shape == SHAPE
    cos = _cosines(flt, quant, _chips(rng, 30))
    assert np.median(cos) > 0.99  # a wrong scale or zero point anywhere gives far less
    assert cos.min() > 0.95
    out = quant.run(_chips(rng, 1)[0])[0]
    assert out.shape == (1, 16)
    assert out.dtype == np.float32


def test_int8_model_has_int8_activations_per_channel_weights_and_int32_biases() -> None:
    rng = np.random.default_rng(6)
    tensors = _tensors(_int8(_graph(rng), _chips(rng, 5)))
    t = fb.TensorType
    assert tensors["chip"].type == t.FLOAT32 and tensors["fc"].type == t.FLOAT32
    assert tensors["chip/int8"].type == t.INT8 and tensors["fc/int8"].type == t.INT8
    assert tensors["conv1"].type == t.INT8 and tensors["prelu1/float"].type == t.FLOAT32
    conv = tensors["conv1/weights"]
    assert conv.type == t.INT8
    assert len(conv.quantization.scale) == 8 and conv.quantization.quantizedDimension == 0
    assert list(conv.quantization.zeroPoint) == [0] * 8
    dw = tensors["dw/weights"]
    assert len(dw.quantization.scale) == 8 and dw.quantization.quantizedDimension == 3
    assert tensors["dw/bias"].type == t.INT32 and tensors["fc/bias"].type == t.INT32
    # the padded tensor keeps its input's quantisation (the pad value is the zero point)
    assert tensors["pad"].quantization.scale == tensors["prelu1"].quantization.scale


def test_scale_shift_before_the_fully_connected_is_folded_into_it() -> None:
    rng = np.random.default_rng(10)
    model = _int8(_graph(rng), _chips(rng, 5))
    graph = fb.ModelT.InitFromPackedBuf(bytearray(model), 0).subgraphs[0]
    written = {graph.tensors[o].name.decode() for op in graph.operators for o in op.outputs}
    assert "residual" in written and "flatten" in written
    assert "bn/mul" not in written and "bn" not in written


def test_xnnpack_takes_the_whole_int8_graph() -> None:
    rng = np.random.default_rng(7)
    interp = Interpreter(model_content=_int8(_graph(rng), _chips(rng, 5)), num_threads=1)
    interp.allocate_tensors()
    ops = [op["op_name"] for op in interp._get_ops_details()]
    assert ops.count("DELEGATE") == 1


def test_hybrid_model_has_int8_weights_and_float_activations() -> None:
    rng = np.random.default_rng(8)
    model = _graph(rng)
    hybrid = quantize_weights(model)
    tensors = _tensors(hybrid)
    assert tensors["conv1/weights"].type == fb.TensorType.INT8
    assert tensors["dw/weights"].quantization.quantizedDimension == 3
    assert tensors["conv1"].type == fb.TensorType.FLOAT32
    assert tensors["fc/bias"].type == fb.TensorType.FLOAT32
    cos = _cosines(TFLiteModel(model, "float"), TFLiteModel(hybrid, "hybrid"), _chips(rng, 30))
    assert cos.min() > 0.995


def test_unsupported_op_and_missing_samples_are_refused() -> None:
    rng = np.random.default_rng(9)
    with pytest.raises(ModelBuildError, match="AVERAGE_POOL_2D"):
        _int8(_graph(rng, pool=True), _chips(rng, 2))
    with pytest.raises(ModelBuildError, match="calibration samples"):
        activation_ranges(_graph(rng), [])


def test_ranges_are_keyed_by_the_names_of_the_folded_model() -> None:
    rng = np.random.default_rng(11)
    ranges = activation_ranges(_graph(rng), _chips(rng, 3))
    assert {"chip", "conv1", "prelu1", "pad", "residual", "flatten", "fc"} <= ranges.keys()
    assert "bn" not in ranges and "bn/mul" not in ranges  # folded into fc
    lo, hi = ranges["chip"]
    assert 0 <= lo < hi <= 255


def test_ranges_that_do_not_fit_the_model_are_refused() -> None:
    rng = np.random.default_rng(12)
    model = _graph(rng)
    ranges = activation_ranges(model, _chips(rng, 3))
    missing = {k: v for k, v in ranges.items() if k != "conv2"}
    with pytest.raises(ModelBuildError, match=r"1 tensors without a range \(conv2\).*calibrate"):
        quantize_int8(model, missing)
    with pytest.raises(ModelBuildError, match=r"1 ranges of no tensor \(other\)"):
        quantize_int8(model, {**ranges, "other": (0.0, 1.0)})
