"""ONNX -> TFLite import against onnxruntime on a small graph with SFace's op mix."""

import numpy as np
import pytest

from models.errors import ModelBuildError

onnx = pytest.importorskip("onnx", reason="onnx (build extra) not installed")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime (dev extra) not installed")
pytest.importorskip("ai_edge_litert", reason="ai-edge-litert (edge extra) not installed")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from models.runtime import TFLiteModel  # noqa: E402
from models.tools.onnx_import import OnnxImporter, load  # noqa: E402
from models.tools.tflite_writer import GraphWriter  # noqa: E402


def _bn(rng: np.random.Generator, name: str, c: int, inputs: str, out: str) -> tuple:
    arrays = {
        f"{name}_g": rng.uniform(0.5, 2, c),
        f"{name}_b": rng.normal(size=c),
        f"{name}_m": rng.normal(size=c),
        f"{name}_v": rng.uniform(0.5, 2, c),
    }
    node = helper.make_node("BatchNormalization", [inputs, *arrays], [out], epsilon=1e-3, name=name)
    return node, arrays


def _serialised(nodes: list, arrays: dict[str, np.ndarray]) -> bytes:
    """An opset-11 model of ``nodes`` from input ``data`` [1, 3, 8, 8] to output ``out``;
    ``arrays`` become initialisers (``shape``: int64, the others float32)."""
    inits = [
        numpy_helper.from_array(v.astype(np.int64 if k == "shape" else np.float32), k)
        for k, v in arrays.items()
    ]
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    return model.SerializeToString()


def _model(rng: np.random.Generator, ops: list[str] | None = None) -> bytes:
    """data [1, 3, 8, 8] -> Sub/Mul constants -> conv+BN -> PRelu -> depthwise stride 2
    (padded both sides) + BN -> BN alone -> Dropout -> Flatten -> Gemm (transB) + BN."""
    arrays: dict[str, np.ndarray] = {
        "mean": np.array(127.5),
        "scale": np.array(0.0078125),
        "w1": rng.normal(size=(4, 3, 3, 3)) * 0.3,
        "alpha": rng.uniform(0, 0.5, (4, 1, 1)),
        "w2": rng.normal(size=(4, 1, 3, 3)) * 0.3,
        "fc_w": rng.normal(size=(5, 4 * 4 * 4)) * 0.2,
        "fc_b": rng.normal(size=5),
    }
    nodes = [
        helper.make_node("Sub", ["data", "mean"], ["sub"]),
        helper.make_node("Mul", ["sub", "scale"], ["mul"]),
        helper.make_node("Conv", ["mul", "w1"], ["c1"], kernel_shape=[3, 3], pads=[1] * 4),
    ]
    for node, extra in (
        _bn(rng, "bn1", 4, "c1", "b1"),
        (helper.make_node("PRelu", ["b1", "alpha"], ["p1"]), {}),
        (
            helper.make_node(
                "Conv",
                ["p1", "w2"],
                ["c2"],
                kernel_shape=[3, 3],
                pads=[1] * 4,
                strides=[2, 2],
                group=4,
            ),
            {},
        ),
        _bn(rng, "bn2", 4, "c2", "b2"),
        _bn(rng, "bn3", 4, "b2", "b3"),
        (helper.make_node("Dropout", ["b3"], ["d"]), {}),
        (helper.make_node("Flatten", ["d"], ["f"]), {}),
        (helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["g"], transB=1), {}),
        _bn(rng, "bn4", 5, "g", "out"),
    ):
        nodes.append(node)
        arrays.update(extra)
    if ops is not None:
        nodes = [helper.make_node(op, ["data"], ["out"]) for op in ops]
    return _serialised(nodes, arrays)


def test_imported_graph_computes_what_onnxruntime_computes() -> None:
    rng = np.random.default_rng(11)
    data = _model(rng)
    g = GraphWriter("test")
    x = g.input("x", (1, 8, 8, 3))
    (y,) = OnnxImporter(g, load(data)).run(x)
    model = TFLiteModel(g.finish([y]), "test")
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    for _ in range(3):
        image = rng.uniform(0, 255, (1, 8, 8, 3)).astype(np.float32)
        expected = session.run(None, {"data": image.transpose(0, 3, 1, 2).copy()})[0]
        got = model.run(image)[0]
        assert got.shape == expected.shape == (1, 5)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_batchnorms_after_conv_and_gemm_fold_away() -> None:
    g = GraphWriter("test")
    OnnxImporter(g, load(_model(np.random.default_rng(2)))).run(g.input("x", (1, 8, 8, 3)))
    names = [t.name for t in g._tensors]
    assert "b1/mul" not in names and "out/mul" not in names
    assert "b3/mul" in names  # after another BN, not a Conv: stays a multiply-add
    assert "b1" in names and "out" in names  # folded results keep the BN's output name
    assert "c1" not in names and "g" not in names


def test_an_unsupported_op_is_a_clear_build_error() -> None:
    g = GraphWriter("test")
    importer = OnnxImporter(g, load(_model(np.random.default_rng(3), ["Tanh"])), "tiny/")
    with pytest.raises(ModelBuildError, match="ONNX op Tanh is not supported"):
        importer.run(g.input("x", (1, 8, 8, 3)))


def test_bytes_that_are_not_onnx_are_refused() -> None:
    with pytest.raises(ModelBuildError, match="not a readable ONNX model"):
        load(b"\x00 this is not a protobuf \xff" * 4)


def _fpn_model(rng: np.random.Generator) -> bytes:
    """YuNet's op mix: conv stride 2 (padded both sides) + ReLU -> MaxPool -> nearest 2x
    Resize added to the pre-pool tensor -> NCHW->NHWC Transpose -> Reshape [1, HW, C]."""
    arrays = {
        "w1": rng.normal(size=(4, 3, 3, 3)) * 0.3,
        "b1": rng.normal(size=4),
        "roi": np.zeros(0),
        "scales": np.array([1.0, 1.0, 2.0, 2.0]),
        "shape": np.array([1, 16, 4]),
    }
    nodes = [
        helper.make_node(
            "Conv", ["data", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1] * 4, strides=[2, 2]
        ),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node(
            "Resize",
            ["p1", "roi", "scales"],
            ["u1"],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        ),
        helper.make_node("Add", ["r1", "u1"], ["a1"]),
        helper.make_node("Transpose", ["a1"], ["t1"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["t1", "shape"], ["out"]),
    ]
    return _serialised(nodes, arrays)


def test_pooling_upsampling_and_channels_last_heads_compute_what_onnxruntime_does() -> None:
    rng = np.random.default_rng(5)
    data = _fpn_model(rng)
    g = GraphWriter("fpn")
    (y,) = OnnxImporter(g, load(data)).run(g.input("x", (1, 8, 8, 3)))
    model = TFLiteModel(g.finish([y]), "fpn")
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    image = rng.uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)
    expected = session.run(None, {"data": image.transpose(0, 3, 1, 2).copy()})[0]
    got = model.run(image)[0]
    assert expected.shape == (1, 16, 4)
    np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-5, atol=1e-5)


def test_a_resize_we_cannot_reproduce_is_refused() -> None:
    model = onnx.load_model_from_string(_fpn_model(np.random.default_rng(6)))
    resize = next(n for n in model.graph.node if n.op_type == "Resize")
    for attr in resize.attribute:
        if attr.name == "coordinate_transformation_mode":
            attr.s = b"half_pixel"
    g = GraphWriter("fpn")
    importer = OnnxImporter(g, model)
    with pytest.raises(ModelBuildError, match="only integer nearest-neighbour"):
        importer.run(g.input("x", (1, 8, 8, 3)))
