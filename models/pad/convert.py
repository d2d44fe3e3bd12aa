"""Convert MiniFASNet ONNX models into one TFLite model for the terminal (build time only).

The two reference networks (V2 on a crop 2.7x the face box, V1SE on a crop 4x)
become two branches of one float32 graph: the input is [1, 80, 80, 6], the
BGR crop of each scale side by side on the channel axis (0..255, no scaling);
each branch's first convolution reads only its own three channels (zero
weights on the others). The output [1, 3] is the mean of the two softmaxes,
index 1 = live. Needs the ``onnx`` package (``build`` extra), never the terminal.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import ModelBuildError
from models.pad.graph import PadGraphWriter

INPUT_SIZE = 80


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _conv(
    g: PadGraphWriter, x: int, node: Any, inits: dict[str, np.ndarray], channels: slice | None
) -> int:
    """An ONNX Conv (plain or depthwise, with bias) in NHWC."""
    attrs = _attrs(node)
    w = inits[node.input[1]].astype(np.float32)
    b = inits[node.input[2]].astype(np.float32) if len(node.input) > 2 else np.zeros(w.shape[0])
    out_c, in_c, kh, _ = w.shape
    group, stride = int(attrs.get("group", 1)), int(attrs.get("strides", [1, 1])[0])
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    name = node.output[0]
    if pads == [0] * 4:
        same = False
    elif stride == 1 and pads == [(kh - 1) // 2] * 4:
        same = True
    else:  # explicit padding: TFLite's SAME pads after, PyTorch on both sides
        top, left, bottom, right = pads
        x = g.pad(x, [(0, 0), (top, bottom), (left, right), (0, 0)], f"{name}/pad")
        same = False
    if group == 1:
        if channels is not None:  # read only this branch's channels of the shared input
            wide = np.zeros((out_c, g.shapes[x][3], kh, w.shape[3]), np.float32)
            wide[:, channels] = w
            w = wide
        return g.conv2d(
            x, w.transpose(0, 2, 3, 1), b, stride=stride, same=same, relu=False, name=name
        )
    if group == out_c and in_c == 1:
        return g.depthwise(x, w.transpose(1, 2, 3, 0), b, stride=stride, same=same, name=name)
    raise ModelBuildError(f"{name}: grouped convolution ({group} groups) is not supported")


def _branch(g: PadGraphWriter, x: int, path: Path, channels: slice) -> int:
    """The layers of one ONNX model reading ``channels`` of ``x``; returns its softmax."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    source = graph.input[0].name
    tensors: dict[str, int] = {source: x}
    prefix = path.stem
    for node in graph.node:
        op, ins, out = node.op_type, list(node.input), node.output[0]
        name = f"{prefix}{out}"
        if op == "Constant":
            inits[out] = numpy_helper.to_array(_attrs(node)["value"])
        elif op == "Conv":
            only = channels if ins[0] == source else None
            tensors[out] = _conv(g, tensors[ins[0]], node, inits, only)
        elif op == "PRelu":
            tensors[out] = g.prelu(tensors[ins[0]], inits[ins[1]].reshape(-1), name)
        elif op == "Relu":
            tensors[out] = g.relu(tensors[ins[0]], name)
        elif op == "Sigmoid":
            tensors[out] = g.sigmoid(tensors[ins[0]], name)
        elif op == "GlobalAveragePool":
            tensors[out] = g.pooled(tensors[ins[0]], name)
        elif op in ("Add", "Mul"):
            a, b = tensors[ins[0]], tensors[ins[1]]
            if np.prod(g.shapes[a]) < np.prod(g.shapes[b]):
                a, b = b, a
            tensors[out] = g.add(a, b, False, name) if op == "Add" else g.mul(a, b, name)
        elif op == "Reshape":
            tensors[out] = g.flatten(tensors[ins[0]], name)
        elif op == "MatMul":
            weights = inits[ins[1]].astype(np.float32).T
            bias = np.zeros(weights.shape[0], np.float32)
            tensors[out] = g.linear(tensors[ins[0]], np.ascontiguousarray(weights), bias, name)
        elif op == "BatchNormalization":
            gamma, beta, mean, var = (inits[i].astype(np.float64) for i in ins[1:5])
            scale = gamma / np.sqrt(var + float(_attrs(node).get("epsilon", 1e-5)))
            y = g.mul(tensors[ins[0]], g.const(f"{name}/scale", scale), f"{name}/mul")
            shift = g.const(f"{name}/shift", beta - mean * scale)
            tensors[out] = g.add(y, shift, False, name)
        else:
            raise ModelBuildError(f"{path.name}: ONNX op {op} is not supported by the converter")
    return g.softmax(tensors[graph.output[0].name], f"{prefix}/softmax")


def build_tflite(paths: Sequence[Path]) -> bytes:
    """One TFLite model averaging the softmaxes of the ONNX models at ``paths``."""
    g = PadGraphWriter("MiniFASNet ensemble (converted from ONNX by lifecert)")
    x = g.input("crops_bgr", (1, INPUT_SIZE, INPUT_SIZE, 3 * len(paths)))
    probs = [_branch(g, x, p, slice(3 * i, 3 * i + 3)) for i, p in enumerate(paths)]
    total = probs[0]
    for i, p in enumerate(probs[1:]):
        total = g.add(total, p, False, f"ensemble/sum{i}")
    weight = g.const("ensemble/weight", np.full(3, 1 / len(paths), np.float32))
    return g.finish([g.mul(total, weight, "ensemble/mean")])
