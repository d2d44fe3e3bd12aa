"""Post-training quantisation of the float32 TFLite graphs our writer packs (build time only).

Both functions take the float model's flatbuffer bytes (e.g. ``sface.build_tflite``'s) and
return a repacked model with the same float32 input and output:

- ``quantize_weights``: dynamic-range ("hybrid"): CONV_2D, DEPTHWISE_CONV_2D and
  FULLY_CONNECTED weights int8, symmetric per output channel; activations stay float32.
- ``quantize_int8``: full integer: activations int8 (per tensor, asymmetric, over ranges
  that ``activation_ranges`` calibrated by running the float model on sample inputs, keyed
  by tensor name so they can be kept in a file), weights int8 per output channel, biases
  int32; a QUANTIZE op after the input and a DEQUANTIZE before the output, which XNNPACK
  runs as QS8. PRELU stays float32 between a DEQUANTIZE and a QUANTIZE: XNNPACK has no int8
  PReLU, and an op it does not take splits its graph at every occurrence (SFace: 28
  partitions, 4x slower than the float model).

Example (the terminal's embedder; chips: [1, 112, 112, 3] float32, 0..255)::

    flt = sface.build_tflite(onnx_bytes)
    q8 = quantize_int8(flt, activation_ranges(flt, (chip[None] for chip in chips)))
"""

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as fb

from models.errors import ModelBuildError

OP = fb.BuiltinOperator
#: weight input's channel axis per op: TFLite keeps depthwise filters as [1, h, w, channels]
WEIGHT_AXIS = {OP.CONV_2D: 0, OP.DEPTHWISE_CONV_2D: 3, OP.FULLY_CONNECTED: 0}
#: op versions (tensorflow/lite/tools/versioning/op_version.cc) of the hybrid ops with
#: per-channel weights
HYBRID_VERSION = {OP.CONV_2D: 5, OP.DEPTHWISE_CONV_2D: 6, OP.FULLY_CONNECTED: 12}
#: op versions of the int8 ops ``quantize_int8`` writes; the ops it knows
INT8_VERSION = {
    OP.CONV_2D: 3,
    OP.DEPTHWISE_CONV_2D: 3,
    OP.FULLY_CONNECTED: 4,
    OP.ADD: 2,
    OP.MUL: 2,
    OP.PAD: 2,
    OP.RESHAPE: 1,
    OP.PRELU: 1,  # float32, between DEQUANTIZE and QUANTIZE
    OP.QUANTIZE: 1,
    OP.DEQUANTIZE: 2,
}
#: ops whose output must keep their input's scale and zero point
SAME_SCALE = (OP.PAD, OP.RESHAPE)


def _unpack(model: bytes) -> Any:
    return fb.ModelT.InitFromPackedBuf(bytearray(model), 0)


def _pack(m: Any) -> bytes:
    builder = flatbuffers.Builder(32 * 1024 * 1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _code(m: Any, op: Any) -> int:
    return int(m.operatorCodes[op.opcodeIndex].builtinCode)


def _is_const(m: Any, tensor: Any) -> bool:
    data = m.buffers[tensor.buffer].data
    return data is not None and len(data) > 0


def _const(m: Any, tensor: Any) -> np.ndarray:
    data = bytes(m.buffers[tensor.buffer].data)
    return np.frombuffer(data, np.float32).reshape(tensor.shape)


def _store(m: Any, tensor: Any, values: np.ndarray, kind: int, q: Any) -> None:
    m.buffers[tensor.buffer].data = np.frombuffer(np.ascontiguousarray(values).tobytes(), np.uint8)
    tensor.type, tensor.quantization = kind, q


def _params(scale: np.ndarray, zero_point: np.ndarray, axis: int = 0) -> Any:
    q = fb.QuantizationParametersT()
    q.scale = [float(s) for s in np.atleast_1d(scale)]
    q.zeroPoint = [int(z) for z in np.atleast_1d(zero_point)]
    q.quantizedDimension = axis
    return q


def _per_channel(m: Any, tensor: Any, axis: int) -> np.ndarray:
    """Quantise a float weight tensor in place, int8 symmetric per channel on ``axis``;
    returns its scales."""
    w = _const(m, tensor)
    reduce = tuple(d for d in range(w.ndim) if d != axis)
    scale = np.abs(w).max(axis=reduce) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    _store(m, tensor, q, fb.TensorType.INT8, _params(scale, np.zeros_like(scale, np.int64), axis))
    return scale


def _affine(lo: float, hi: float) -> tuple[float, int]:
    """Scale and zero point of int8 over [lo, hi] widened to hold 0 exactly."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    zero_point = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return scale, zero_point


def _per_tensor(m: Any, tensor: Any) -> None:
    """Quantise a float constant in place, int8 asymmetric over its own range."""
    c = _const(m, tensor)
    scale, zp = _affine(float(c.min()), float(c.max()))
    q = np.clip(np.round(c / scale) + zp, -128, 127).astype(np.int8)
    _store(m, tensor, q, fb.TensorType.INT8, _params(np.array([scale]), np.array([zp])))


def quantize_weights(model: bytes) -> bytes:
    """The dynamic-range variant of a float32 model: int8 weights, float activations."""
    m = _unpack(model)
    for graph in m.subgraphs:
        for op in graph.operators:
            code = _code(m, op)
            if code in WEIGHT_AXIS:
                _per_channel(m, graph.tensors[op.inputs[1]], WEIGHT_AXIS[code])
    for oc in m.operatorCodes:
        oc.version = HYBRID_VERSION.get(oc.builtinCode, oc.version)
    return _pack(m)


def _name(tensor: Any) -> str:
    return tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)


def _calibrated(m: Any) -> dict[str, int]:
    """Name -> index of the tensors of the first subgraph that get an int8 range: every
    computed float tensor and the input."""
    graph = m.subgraphs[0]
    produced = {*graph.inputs, *(o for op in graph.operators for o in op.outputs)}
    names: dict[str, int] = {}
    for i in sorted(produced):
        if graph.tensors[i].type != fb.TensorType.FLOAT32:
            continue
        name = _name(graph.tensors[i])
        if name in names:
            raise ModelBuildError(f"tensor name {name!r} is not unique: ranges are keyed by name")
        names[name] = i
    return names


def activation_ranges(
    model: bytes, samples: Iterable[np.ndarray]
) -> dict[str, tuple[float, float]]:
    """(min, max) by tensor name of every computed float tensor of the first subgraph of the
    folded model (``fold_scale_shift``, as ``quantize_int8`` sees it): the mean over
    ``samples`` (each one input batch) of each sample's extremes (on TFLite's built-in
    kernels, every tensor kept); the graph's input and output get the overall extremes. On
    SFace the mean of extremes, not the overall extremes, lifts the median cosine to the
    float model from 0.986 to 0.995."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    model = fold_scale_shift(model)
    m = _unpack(model)
    graph = m.subgraphs[0]
    watched = _calibrated(m)
    interp = Interpreter(
        model_content=model,
        num_threads=1,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        experimental_preserve_all_tensors=True,
    )
    interp.allocate_tensors()
    source = interp.get_input_details()[0]["index"]
    extremes: dict[str, list[tuple[float, float]]] = {name: [] for name in watched}
    for sample in samples:
        interp.set_tensor(source, np.asarray(sample, np.float32))
        interp.invoke()
        for name, i in watched.items():
            v = interp.get_tensor(i)
            extremes[name].append((float(v.min()), float(v.max())))
    if not watched or not next(iter(extremes.values())):
        raise ModelBuildError("no calibration samples: full-integer quantisation needs some")
    ends = {*graph.inputs, *graph.outputs}  # never clipped: the chip's pixels, the template
    ranges = {}
    for name, e in extremes.items():
        lows, highs = np.array(e).T
        whole = watched[name] in ends
        ranges[name] = (lows.min(), highs.max()) if whole else (lows.mean(), highs.mean())
    return {name: (float(lo), float(hi)) for name, (lo, hi) in ranges.items()}


def _opcode(m: Any, code: int) -> int:
    for k, oc in enumerate(m.operatorCodes):
        if oc.builtinCode == code:
            return k
    oc = fb.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = code
    oc.version = INT8_VERSION[code]
    m.operatorCodes.append(oc)
    return len(m.operatorCodes) - 1


def _convert_op(m: Any, graph: Any, op: Any) -> None:
    """Quantise ``op``'s constant inputs for int8 activations (their params already set)."""
    code = _code(m, op)
    tensors = graph.tensors
    if code in WEIGHT_AXIS:
        in_scale = tensors[op.inputs[0]].quantization.scale[0]
        w_scale = _per_channel(m, tensors[op.inputs[1]], WEIGHT_AXIS[code])
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            bias = tensors[op.inputs[2]]
            scale = (in_scale * w_scale.astype(np.float64)).astype(np.float32)
            b = np.round(_const(m, bias).astype(np.float64) / scale)
            q = np.clip(b, -(2**31), 2**31 - 1).astype(np.int32)
            axis_params = _params(scale, np.zeros_like(scale, np.int64))
            _store(m, bias, q, fb.TensorType.INT32, axis_params)
    elif code in (OP.ADD, OP.MUL):
        for i in op.inputs:
            if tensors[i].type == fb.TensorType.FLOAT32 and _is_const(m, tensors[i]):
                _per_tensor(m, tensors[i])
    elif code not in SAME_SCALE:
        name = next((k for k, v in vars(OP).items() if v == code), str(code))
        raise ModelBuildError(f"op {name} is not supported by the int8 quantiser")


def _float_copy(graph: Any, index: int, rename: bool = False) -> int:
    """A new float32 activation tensor shaped like tensor ``index``, named ``<name>/float``;
    with ``rename`` it takes the name and tensor ``index`` becomes ``<name>/int8``."""
    t = graph.tensors[index]
    name = _name(t)
    twin = fb.TensorT()
    twin.name, twin.shape, twin.type, twin.buffer = f"{name}/float", list(t.shape), 0, 0
    if rename:
        twin.name, t.name = name, f"{name}/int8"
    graph.tensors.append(twin)
    return len(graph.tensors) - 1


def _operator(m: Any, code: int, inputs: list[int], outputs: list[int]) -> Any:
    op = fb.OperatorT()
    op.opcodeIndex = _opcode(m, code)
    op.inputs, op.outputs = inputs, outputs
    return op


def _chain(
    m: Any, producer: dict[int, Any], tensor: int, codes: tuple[int, ...]
) -> list[Any] | None:
    """The ops computing ``tensor``, followed back through their first inputs, when their
    codes are ``codes``."""
    ops = []
    for code in codes:
        op = producer.get(tensor)
        if op is None or _code(m, op) != code:
            return None
        ops.append(op)
        tensor = op.inputs[0]
    return ops


def fold_scale_shift(model: bytes) -> bytes:
    """``x * s + t`` with per-channel constants ``s``, ``t`` whose only reader is a RESHAPE
    feeding a FULLY_CONNECTED (SFace's last BatchNormalization) folded into that layer's
    weights and bias, in float: two int8 tensors fewer right before the template."""
    m = _unpack(model)
    graph = m.subgraphs[0]
    producer = {o: op for op in graph.operators for o in op.outputs}
    readers = Counter(i for op in graph.operators for i in op.inputs)
    dropped: list[Any] = []
    for fc in graph.operators:
        if _code(m, fc) != OP.FULLY_CONNECTED or len(fc.inputs) < 3 or fc.inputs[2] < 0:
            continue
        chain = _chain(m, producer, fc.inputs[0], (OP.RESHAPE, OP.ADD, OP.MUL))
        if chain is None:
            continue
        flat, add, mul = chain
        if (
            readers[add.outputs[0]] != 1
            or readers[mul.outputs[0]] != 1
            or not _is_const(m, graph.tensors[add.inputs[1]])
            or not _is_const(m, graph.tensors[mul.inputs[1]])
        ):
            continue
        channels = graph.tensors[mul.inputs[0]].shape[-1]
        scale = _const(m, graph.tensors[mul.inputs[1]]).astype(np.float64).reshape(-1)
        shift = _const(m, graph.tensors[add.inputs[1]]).astype(np.float64).reshape(-1)
        if len(scale) != channels or len(shift) != channels:
            continue
        weights, bias = graph.tensors[fc.inputs[1]], graph.tensors[fc.inputs[2]]
        w = _const(m, weights).astype(np.float64)
        reps = w.shape[1] // channels  # flattened [h, w, c]: channel = index % c
        b = _const(m, bias).astype(np.float64) + w @ np.tile(shift, reps)
        _store(m, weights, (w * np.tile(scale, reps)).astype(np.float32), weights.type, None)
        _store(m, bias, b.astype(np.float32), bias.type, None)
        flat.inputs[0] = mul.inputs[0]
        dropped += [mul, add]
    graph.operators = [op for op in graph.operators if all(op is not d for d in dropped)]
    return _pack(m)


def quantize_int8(model: bytes, ranges: Mapping[str, tuple[float, float]]) -> bytes:
    """The full-integer variant of a float32 model over the activation ``ranges`` that
    ``activation_ranges`` calibrated on this model (by tensor name); float32 input and
    output, PRELU float32 between a DEQUANTIZE and a QUANTIZE. A per-channel scale-shift
    feeding a fully connected layer is folded into it first (``fold_scale_shift``, in
    float)."""
    model = fold_scale_shift(model)
    m = _unpack(model)
    graph = m.subgraphs[0]
    names = _calibrated(m)
    missing, extra = sorted(names.keys() - ranges.keys()), sorted(ranges.keys() - names.keys())
    if missing or extra:
        found = [f"{len(v)} {what} ({', '.join(v[:3])}{', ...' if len(v) > 3 else ''})"
                 for what, v in (("tensors without a range", missing),
                                 ("ranges of no tensor", extra)) if v]  # fmt: skip
        raise ModelBuildError(
            f"the calibration ranges do not fit this model: {'; '.join(found)}; calibrate "
            "again on this float model (activation_ranges; SFace: `lifecert-models calibrate`)"
        )
    for name, i in names.items():
        scale, zp = _affine(*ranges[name])
        graph.tensors[i].type = fb.TensorType.INT8
        graph.tensors[i].quantization = _params(np.array([scale]), np.array([zp]))
    ops: list[Any] = []
    for op in graph.operators:
        if _code(m, op) == OP.PRELU:
            x, y = op.inputs[0], op.outputs[0]
            xf, yf = _float_copy(graph, x), _float_copy(graph, y)
            op.inputs, op.outputs = [xf, *op.inputs[1:]], [yf]
            ops += [
                _operator(m, OP.DEQUANTIZE, [x], [xf]),
                op,
                _operator(m, OP.QUANTIZE, [yf], [y]),
            ]
            continue
        if _code(m, op) in SAME_SCALE:
            graph.tensors[op.outputs[0]].quantization = graph.tensors[op.inputs[0]].quantization
        _convert_op(m, graph, op)
        ops.append(op)
    source, sink = graph.inputs[0], graph.outputs[0]
    graph.inputs = [_float_copy(graph, source, rename=True)]
    graph.outputs = [_float_copy(graph, sink, rename=True)]
    graph.operators = [
        _operator(m, OP.QUANTIZE, graph.inputs, [source]),
        *ops,
        _operator(m, OP.DEQUANTIZE, [sink], graph.outputs),
    ]
    for oc in m.operatorCodes:
        oc.version = INT8_VERSION[oc.builtinCode]
    return _pack(m)
