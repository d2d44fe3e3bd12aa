"""Translate an ONNX graph (NCHW) into TFLite ops (NHWC) with the project's ``GraphWriter``.

Build time only (needs the ``onnx`` package, ``build`` extra). Covers the ops of the
small CNNs we convert (MiniFASNet, SFace): Conv (plain and depthwise), BatchNormalization
(folded into the Conv or Gemm it follows, else a multiply-add), PRelu, Relu, Sigmoid,
GlobalAveragePool, element-wise Add/Sub/Mul/Div (of two tensors, or by a constant),
Dropout (dropped: inference), Flatten/Reshape to [n, -1], Gemm and MatMul.

Layout: a 4-D ONNX tensor [n, c, h, w] lives as [n, h, w, c]. Flattening it therefore
yields h, w, c order; a fully connected layer reading such a flattened tensor gets its
weight columns re-ordered from ONNX's c, h, w order to match.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import ModelBuildError
from models.tools.tflite_writer import GraphWriter


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _batchnorm(node: Any, inits: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``scale`` and ``shift`` with ``bn(x) = x * scale + shift``."""
    gamma, beta, mean, var = (inits[i].astype(np.float64) for i in node.input[1:5])
    scale = gamma / np.sqrt(var + float(_attrs(node).get("epsilon", 1e-5)))
    return scale, beta - mean * scale


def _channel_vector(value: np.ndarray, what: str) -> np.ndarray:
    """An ONNX constant that broadcasts over channels ([c, 1, 1], [c] or a scalar) as [c]."""
    flat = np.asarray(value, np.float64)
    if flat.ndim > 1 and any(d != 1 for d in flat.shape[1:]):
        raise ModelBuildError(f"{what}: constant of shape {flat.shape} is not per channel")
    return flat.reshape(-1)


class OnnxImporter:
    """Adds the layers of one ONNX model to a ``GraphWriter``.

    ``channels``: when given, convolutions reading the ONNX input read only these channels
    of ``x`` (several models side by side on one input's channel axis).
    """

    def __init__(
        self, g: GraphWriter, model: Any, prefix: str = "", channels: slice | None = None
    ) -> None:
        from onnx import numpy_helper

        self.g, self.model, self.prefix, self.channels = g, model, prefix, channels
        graph = model.graph
        self.inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        # old exporters also list the weights as graph inputs: the data input is the other one
        self.source = next(i.name for i in graph.input if i.name not in self.inits)
        self.consumers: dict[str, list[Any]] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.tensors: dict[str, int] = {}
        self.hwc: dict[str, tuple[int, int, int]] = {}  # flattened from [h, w, c]
        self._skip: set[str] = set()

    def run(self, x: int) -> list[int]:
        """The model's outputs, computed from ``x`` (the ONNX input, as NHWC)."""
        from onnx import numpy_helper

        self.tensors = {self.source: x}
        ops: dict[str, Callable[[Any], int]] = {
            "Conv": self._conv,
            "Gemm": self._gemm,
            "MatMul": self._matmul,
            "BatchNormalization": self._bn,
            "PRelu": lambda n: self.g.prelu(
                self._in(n, 0), self.inits[n.input[1]].reshape(-1), self._name(n)
            ),
            "Relu": lambda n: self.g.relu(self._in(n, 0), self._name(n)),
            "Sigmoid": lambda n: self.g.sigmoid(self._in(n, 0), self._name(n)),
            "GlobalAveragePool": lambda n: self.g.pooled(self._in(n, 0), self._name(n)),
            "Dropout": lambda n: self._in(n, 0),
            "MaxPool": self._maxpool,
            "Resize": self._resize,
            "Transpose": self._to_channels_last,
            "Flatten": self._flatten,
            "Reshape": self._flatten,
            "Add": self._elementwise,
            "Sub": self._elementwise,
            "Mul": self._elementwise,
            "Div": self._elementwise,
        }
        for node in self.model.graph.node:
            out = node.output[0]
            if out in self._skip:
                continue
            if node.op_type == "Constant":
                self.inits[out] = numpy_helper.to_array(_attrs(node)["value"])
                continue
            try:
                op = ops[node.op_type]
            except KeyError:
                raise ModelBuildError(
                    f"{self.prefix or 'model'}: ONNX op {node.op_type} is not supported by "
                    "the converter"
                ) from None
            self.tensors[out] = op(node)
        return [self.tensors[o.name] for o in self.model.graph.output]

    def _in(self, node: Any, i: int) -> int:
        return self.tensors[node.input[i]]

    def _name(self, node: Any) -> str:
        return f"{self.prefix}{node.output[0]}"

    def _folded_bn(self, node: Any) -> tuple[np.ndarray, np.ndarray, str] | None:
        """The BatchNormalization that alone reads ``node``'s output, to fold into ``node``:
        its scale, shift and output name (it is skipped; ``node``'s result takes the name)."""
        readers = self.consumers.get(node.output[0], [])
        if len(readers) != 1 or readers[0].op_type != "BatchNormalization":
            return None
        bn = readers[0]
        self._skip.add(bn.output[0])
        return (*_batchnorm(bn, self.inits), bn.output[0])

    def _conv(self, node: Any) -> int:
        """Conv (plain or depthwise) with any BatchNormalization after it folded in."""
        attrs = _attrs(node)
        x = self._in(node, 0)
        w = self.inits[node.input[1]].astype(np.float64)
        b = (
            self.inits[node.input[2]].astype(np.float64)
            if len(node.input) > 2
            else np.zeros(w.shape[0])
        )
        out = node.output[0]
        bn = self._folded_bn(node)
        if bn is not None:
            w, b, out = w * bn[0][:, None, None, None], b * bn[0] + bn[1], bn[2]
        out_c, in_c, kh, kw = w.shape
        group, stride = int(attrs.get("group", 1)), int(attrs.get("strides", [1, 1])[0])
        if list(attrs.get("dilations", [1, 1])) != [1, 1] or kh != kw:
            raise ModelBuildError(f"{self._name(node)}: dilated or non-square kernels")
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        name = f"{self.prefix}{out}"
        if pads == [0] * 4:
            same = False
        elif stride == 1 and pads == [(kh - 1) // 2] * 4:
            same = True
        else:  # explicit padding: TFLite's SAME pads after, PyTorch/MXNet on both sides
            top, left, bottom, right = pads
            x = self.g.pad(x, [(0, 0), (top, bottom), (left, right), (0, 0)], f"{name}/pad")
            same = False
        w32, b32 = w.astype(np.float32), b.astype(np.float32)
        if group == 1:
            if self.channels is not None and node.input[0] == self.source:
                wide = np.zeros((out_c, self.g.shapes[x][3], kh, kw), np.float32)
                wide[:, self.channels] = w32
                w32 = wide
            tensor = self.g.conv2d(
                x, w32.transpose(0, 2, 3, 1), b32, stride=stride, same=same, relu=False, name=name
            )
        elif group == out_c and in_c == 1:
            tensor = self.g.depthwise(
                x, w32.transpose(1, 2, 3, 0), b32, stride=stride, same=same, name=name
            )
        else:
            raise ModelBuildError(f"{name}: grouped convolution ({group} groups) is not supported")
        self.tensors[out] = tensor
        return tensor

    def _fc(self, node: Any, weights: np.ndarray, bias: np.ndarray) -> int:
        """Fully connected ``weights`` [out, in] (ONNX column order) with a following BN folded."""
        out = node.output[0]
        bn = self._folded_bn(node)
        if bn is not None:
            weights, bias, out = weights * bn[0][:, None], bias * bn[0] + bn[1], bn[2]
        hwc = self.hwc.get(node.input[0])
        if hwc is not None:  # columns from ONNX's c, h, w order to the flattened h, w, c
            h, w, c = hwc
            weights = weights.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(-1, h * w * c)
        tensor = self.g.linear(
            self._in(node, 0),
            np.ascontiguousarray(weights, np.float32),
            bias.astype(np.float32),
            f"{self.prefix}{out}",
        )
        self.tensors[out] = tensor
        return tensor

    def _gemm(self, node: Any) -> int:
        attrs = _attrs(node)
        if attrs.get("transA", 0):
            raise ModelBuildError(f"{self._name(node)}: Gemm with transA is not supported")
        w = self.inits[node.input[1]].astype(np.float64)
        w = (w if attrs.get("transB", 0) else w.T) * float(attrs.get("alpha", 1.0))
        bias = (
            self.inits[node.input[2]].astype(np.float64).reshape(-1) * float(attrs.get("beta", 1))
            if len(node.input) > 2
            else np.zeros(w.shape[0])
        )
        return self._fc(node, w, np.broadcast_to(bias, (w.shape[0],)))

    def _matmul(self, node: Any) -> int:
        w = self.inits[node.input[1]].astype(np.float64).T
        return self._fc(node, w, np.zeros(w.shape[0]))

    def _bn(self, node: Any) -> int:
        """A BatchNormalization that follows no Conv/Gemm: multiply, then add."""
        scale, shift = _batchnorm(node, self.inits)
        name = self._name(node)
        y = self.g.mul(self._in(node, 0), self.g.const(f"{name}/scale", scale), f"{name}/mul")
        return self.g.add(y, self.g.const(f"{name}/shift", shift), False, name)

    def _maxpool(self, node: Any) -> int:
        """Max pooling without padding (square window)."""
        attrs = _attrs(node)
        size, stride = attrs["kernel_shape"], attrs.get("strides", attrs["kernel_shape"])
        if any(attrs.get("pads", [0])) or attrs.get("ceil_mode", 0) or size[0] != size[1]:
            raise ModelBuildError(f"{self._name(node)}: padded or non-square MaxPool")
        return self.g.pool(self._in(node, 0), int(size[0]), int(stride[0]), False, self._name(node))

    def _resize(self, node: Any) -> int:
        """Resize by an integer factor, nearest neighbour with ONNX's "asymmetric" / "floor"
        rounding (TFLite's without aligned corners or half-pixel centres)."""
        attrs = _attrs(node)
        scales = self.inits.get(node.input[2]) if len(node.input) > 2 else None
        mode = attrs.get("coordinate_transformation_mode", b"half_pixel")
        factor = float(scales[2]) if scales is not None and len(scales) == 4 else 0.0
        if (
            attrs.get("mode") != b"nearest"
            or mode != b"asymmetric"
            or attrs.get("nearest_mode", b"round_prefer_floor") != b"floor"
            or scales is None
            or factor != scales[3]
            or not factor.is_integer()
        ):
            raise ModelBuildError(
                f"{self._name(node)}: only integer nearest-neighbour (asymmetric, floor) Resize"
            )
        return self.g.upsample(self._in(node, 0), int(factor), self._name(node))

    def _to_channels_last(self, node: Any) -> int:
        """Transpose NCHW -> NHWC: our tensors are NHWC already."""
        if list(_attrs(node)["perm"]) != [0, 2, 3, 1]:
            raise ModelBuildError(f"{self._name(node)}: only the NCHW -> NHWC Transpose")
        return self._in(node, 0)

    def _flatten(self, node: Any) -> int:
        """Flatten / Reshape to [n, -1]."""
        x = self._in(node, 0)
        shape = self.g.shapes[x]
        if len(shape) == 4 and shape[1] * shape[2] > 1:
            self.hwc[node.output[0]] = shape[1], shape[2], shape[3]
        return self.g.flatten(x, self._name(node))

    def _elementwise(self, node: Any) -> int:
        """Add / Sub / Mul / Div of two tensors, or of a tensor and a constant."""
        op, name = node.op_type, self._name(node)
        a_name, b_name = node.input[0], node.input[1]
        if b_name in self.inits or a_name in self.inits:
            if a_name in self.inits and op in ("Sub", "Div"):
                raise ModelBuildError(f"{name}: constant {op} tensor is not supported")
            x, const = (
                (self._in(node, 0), b_name)
                if b_name in self.inits
                else (
                    self._in(node, 1),
                    a_name,
                )
            )
            c = _channel_vector(self.inits[const], name)
            if op == "Sub":
                return self.g.add(x, self.g.const(f"{name}/const", -c), False, name)
            if op == "Add":
                return self.g.add(x, self.g.const(f"{name}/const", c), False, name)
            return self.g.mul(x, self.g.const(f"{name}/const", c if op == "Mul" else 1 / c), name)
        if op not in ("Add", "Mul"):
            raise ModelBuildError(f"{name}: {op} of two tensors is not supported")
        a, b = self._in(node, 0), self._in(node, 1)
        if np.prod(self.g.shapes[a]) < np.prod(self.g.shapes[b]):
            a, b = b, a
        return self.g.add(a, b, False, name) if op == "Add" else self.g.mul(a, b, name)


def load(source: Path | bytes) -> Any:
    """An ONNX model from a file or its bytes (a clear error when it is not one)."""
    import onnx

    try:
        if isinstance(source, Path):
            return onnx.load(str(source))
        return onnx.load_model_from_string(source)
    except Exception as exc:  # onnx raises DecodeError or its own errors for bad files
        raise ModelBuildError(f"not a readable ONNX model: {exc}") from None
