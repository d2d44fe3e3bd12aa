"""A small TFLite flatbuffer writer: float32 graphs of the few built-in ops we need.

It fills the object API of the TFLite schema that ``ai-edge-litert`` ships
(``schema_py_generated``) and packs it with ``flatbuffers``; no TensorFlow. The
converters (dlib's ResNet, ONNX graphs through ``models.tools.onnx_import``) share it.
"""

from typing import Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as fb

RELU = fb.ActivationFunctionType.RELU
NONE = fb.ActivationFunctionType.NONE


class GraphWriter:
    """Builds one subgraph op by op; tensors are referred to by index."""

    def __init__(self, description: str) -> None:
        self._description = description
        self._tensors: list[Any] = []
        self._buffers: list[Any] = [fb.BufferT()]  # buffer 0: the empty sentinel
        self._ops: list[Any] = []
        self._codes: list[int] = []
        self.shapes: list[tuple[int, ...]] = []

    def _tensor(self, name: str, shape: tuple[int, ...], data: np.ndarray | None = None) -> int:
        tensor = fb.TensorT()
        tensor.name = name
        tensor.shape = list(shape)
        tensor.type = fb.TensorType.INT32 if data is not None and data.dtype == np.int32 else 0
        if data is not None:
            buffer = fb.BufferT()
            buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            self._buffers.append(buffer)
            tensor.buffer = len(self._buffers) - 1
        else:
            tensor.buffer = 0
        self._tensors.append(tensor)
        self.shapes.append(tuple(shape))
        return len(self._tensors) - 1

    def input(self, name: str, shape: tuple[int, ...]) -> int:
        """A graph input (float32)."""
        self._inputs = [self._tensor(name, shape)]
        return self._inputs[0]

    def const(self, name: str, value: np.ndarray) -> int:
        """A constant tensor (float32 or int32)."""
        value = value.astype(np.int32 if value.dtype.kind in "iu" else np.float32)
        return self._tensor(name, value.shape, value)

    def _op(
        self, code: int, inputs: list[int], out_shape: tuple[int, ...], name: str, options: Any
    ) -> int:
        if code not in self._codes:
            self._codes.append(code)
        out = self._tensor(name, out_shape)
        op = fb.OperatorT()
        op.opcodeIndex = self._codes.index(code)
        op.inputs, op.outputs = inputs, [out]
        # ``Conv2DOptionsT`` -> ``BuiltinOptions.Conv2DOptions``
        op.builtinOptionsType = getattr(fb.BuiltinOptions, type(options).__name__[:-1])
        op.builtinOptions = options
        self._ops.append(op)
        return out

    def conv2d(
        self,
        x: int,
        weights: np.ndarray,
        bias: np.ndarray,
        *,
        stride: int,
        same: bool,
        relu: bool,
        name: str,
    ) -> int:
        """``weights`` in TFLite order [out, h, w, in]."""
        n, h, w, _ = self.shapes[x]
        out_c, kh, kw, _ = weights.shape
        oh, ow = _out_size(h, kh, stride, same), _out_size(w, kw, stride, same)
        opts = fb.Conv2DOptionsT()
        opts.padding = fb.Padding.SAME if same else fb.Padding.VALID
        opts.strideH = opts.strideW = stride
        opts.dilationHFactor = opts.dilationWFactor = 1
        opts.fusedActivationFunction = RELU if relu else NONE
        wt = self.const(f"{name}/weights", weights)
        bt = self.const(f"{name}/bias", bias)
        return self._op(
            fb.BuiltinOperator.CONV_2D,
            [x, wt, bt],
            (n, oh, ow, out_c),
            name,
            opts,
        )

    def pool(self, x: int, size: int, stride: int, average: bool, name: str) -> int:
        """Max or average pooling, VALID padding."""
        n, h, w, c = self.shapes[x]
        opts = fb.Pool2DOptionsT()
        opts.padding = fb.Padding.VALID
        opts.strideH = opts.strideW = stride
        opts.filterHeight = opts.filterWidth = size
        opts.fusedActivationFunction = NONE
        code = fb.BuiltinOperator.AVERAGE_POOL_2D if average else fb.BuiltinOperator.MAX_POOL_2D
        shape = (n, _out_size(h, size, stride, False), _out_size(w, size, stride, False), c)
        return self._op(code, [x], shape, name, opts)

    def upsample(self, x: int, factor: int, name: str) -> int:
        """Nearest-neighbour enlargement by an integer ``factor`` (each pixel repeated)."""
        n, h, w, c = self.shapes[x]
        size = self.const(f"{name}/size", np.array([h * factor, w * factor], dtype=np.int32))
        opts: Any = fb.ResizeNearestNeighborOptionsT()
        opts.alignCorners = opts.halfPixelCenters = False
        shape = (n, h * factor, w * factor, c)
        return self._op(fb.BuiltinOperator.RESIZE_NEAREST_NEIGHBOR, [x, size], shape, name, opts)

    def pad(self, x: int, paddings: list[tuple[int, int]], name: str) -> int:
        """Zero padding, ``paddings`` per dimension (before, after)."""
        shape = tuple(d + a + b for d, (a, b) in zip(self.shapes[x], paddings, strict=True))
        pt = self.const(f"{name}/paddings", np.array(paddings, dtype=np.int32))
        return self._op(
            fb.BuiltinOperator.PAD,
            [x, pt],
            shape,
            name,
            fb.PadOptionsT(),
        )

    def add(self, a: int, b: int, relu: bool, name: str) -> int:
        """Element-wise sum of two tensors of one shape."""
        opts = fb.AddOptionsT()
        opts.fusedActivationFunction = RELU if relu else NONE
        return self._op(fb.BuiltinOperator.ADD, [a, b], self.shapes[a], name, opts)

    def spatial_mean(self, x: int, name: str) -> int:
        """Global average over height and width: [n, h, w, c] -> [n, c]."""
        n, _, _, c = self.shapes[x]
        axes = self.const(f"{name}/axes", np.array([1, 2], dtype=np.int32))
        opts = fb.ReducerOptionsT()
        opts.keepDims = False
        return self._op(fb.BuiltinOperator.MEAN, [x, axes], (n, c), name, opts)

    def dense(self, x: int, weights: np.ndarray, name: str) -> int:
        """Fully connected without bias; ``weights`` [out, in]."""
        n = self.shapes[x][0]
        wt = self.const(f"{name}/weights", weights)
        opts = fb.FullyConnectedOptionsT()
        opts.fusedActivationFunction = NONE
        return self._op(
            fb.BuiltinOperator.FULLY_CONNECTED,
            [x, wt, -1],
            (n, weights.shape[0]),
            name,
            opts,
        )

    def _plain(self, code: int, inputs: list[int], shape: tuple[int, ...], name: str) -> int:
        """An op without builtin options (PRELU, RELU, LOGISTIC)."""
        if code not in self._codes:
            self._codes.append(code)
        out = self._tensor(name, shape)
        op = fb.OperatorT()
        op.opcodeIndex = self._codes.index(code)
        op.inputs, op.outputs = inputs, [out]
        self._ops.append(op)
        return out

    def depthwise(
        self, x: int, weights: np.ndarray, bias: np.ndarray, *, stride: int, same: bool, name: str
    ) -> int:
        """``weights`` in TFLite order [1, h, w, channels], depth multiplier 1."""
        n, h, w, c = self.shapes[x]
        _, kh, kw, _ = weights.shape
        opts: Any = fb.DepthwiseConv2DOptionsT()
        opts.padding = fb.Padding.SAME if same else fb.Padding.VALID
        opts.strideH = opts.strideW = stride
        opts.depthMultiplier = 1
        opts.fusedActivationFunction = NONE
        wt = self.const(f"{name}/weights", weights)
        bt = self.const(f"{name}/bias", bias)
        shape = (n, _out_size(h, kh, stride, same), _out_size(w, kw, stride, same), c)
        return self._op(fb.BuiltinOperator.DEPTHWISE_CONV_2D, [x, wt, bt], shape, name, opts)

    def prelu(self, x: int, alpha: np.ndarray, name: str) -> int:
        """Parametric ReLU, one slope per channel."""
        at = self.const(f"{name}/alpha", alpha.reshape(1, 1, -1))
        return self._plain(fb.BuiltinOperator.PRELU, [x, at], self.shapes[x], name)

    def relu(self, x: int, name: str) -> int:
        """max(x, 0)."""
        return self._plain(fb.BuiltinOperator.RELU, [x], self.shapes[x], name)

    def sigmoid(self, x: int, name: str) -> int:
        """The logistic function."""
        return self._plain(fb.BuiltinOperator.LOGISTIC, [x], self.shapes[x], name)

    def mul(self, a: int, b: int, name: str) -> int:
        """Element-wise product; ``b`` broadcasts to ``a``'s shape."""
        opts: Any = fb.MulOptionsT()
        opts.fusedActivationFunction = NONE
        return self._op(fb.BuiltinOperator.MUL, [a, b], self.shapes[a], name, opts)

    def pooled(self, x: int, name: str) -> int:
        """Global average over height and width, keeping them: [n, h, w, c] -> [n, 1, 1, c]."""
        n, _, _, c = self.shapes[x]
        axes = self.const(f"{name}/axes", np.array([1, 2], dtype=np.int32))
        opts: Any = fb.ReducerOptionsT()
        opts.keepDims = True
        return self._op(fb.BuiltinOperator.MEAN, [x, axes], (n, 1, 1, c), name, opts)

    def flatten(self, x: int, name: str) -> int:
        """[n, ...] -> [n, rest], in the tensor's own (NHWC) order."""
        shape = self.shapes[x]
        new = (shape[0], int(np.prod(shape[1:])))
        opts: Any = fb.ReshapeOptionsT()
        opts.newShape = list(new)
        st = self.const(f"{name}/shape", np.array(new, dtype=np.int32))
        return self._op(fb.BuiltinOperator.RESHAPE, [x, st], new, name, opts)

    def linear(self, x: int, weights: np.ndarray, bias: np.ndarray, name: str) -> int:
        """Fully connected with bias; ``weights`` [out, in]."""
        wt = self.const(f"{name}/weights", weights)
        bt = self.const(f"{name}/bias", bias)
        opts: Any = fb.FullyConnectedOptionsT()
        opts.fusedActivationFunction = NONE
        shape = (self.shapes[x][0], weights.shape[0])
        return self._op(fb.BuiltinOperator.FULLY_CONNECTED, [x, wt, bt], shape, name, opts)

    def softmax(self, x: int, name: str) -> int:
        """Softmax over the last axis."""
        opts: Any = fb.SoftmaxOptionsT()
        opts.beta = 1.0
        return self._op(fb.BuiltinOperator.SOFTMAX, [x], self.shapes[x], name, opts)

    def finish(self, outputs: list[int]) -> bytes:
        """The serialised model with ``outputs`` as graph outputs."""
        graph = fb.SubGraphT()
        graph.tensors, graph.operators = self._tensors, self._ops
        graph.inputs, graph.outputs = self._inputs, outputs
        graph.name = "main"
        model = fb.ModelT()
        model.version = 3
        model.description = self._description
        model.buffers, model.subgraphs = self._buffers, [graph]
        model.operatorCodes = []
        for code in self._codes:
            oc = fb.OperatorCodeT()
            oc.builtinCode = oc.deprecatedBuiltinCode = code
            oc.version = 1
            model.operatorCodes.append(oc)
        builder = flatbuffers.Builder(32 * 1024 * 1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def _out_size(size: int, kernel: int, stride: int, same: bool) -> int:
    return -(-size // stride) if same else (size - kernel) // stride + 1
