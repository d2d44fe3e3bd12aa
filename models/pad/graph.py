"""The extra TFLite ops MiniFASNet needs, on top of the project's ``GraphWriter``."""

from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from models.tools.tflite_writer import NONE, GraphWriter


class PadGraphWriter(GraphWriter):
    """Depthwise convolution, PReLU, squeeze-excitation ops, softmax and a biased dense."""

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
        oh = -(-h // stride) if same else (h - kh) // stride + 1
        ow = -(-w // stride) if same else (w - kw) // stride + 1
        return self._op(
            fb.BuiltinOperator.DEPTHWISE_CONV_2D, [x, wt, bt], (n, oh, ow, c), name, opts
        )

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
        """[n, ...] -> [n, rest]."""
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
