"""Convert dlib's face-recognition ResNet into a float32 TFLite model.

Input: [1, 150, 150, 3] float32 RGB in 0..255 (a dlib face chip). dlib's input
normalisation ``(v - mean) / 256`` and every ``affine`` layer are folded into
the convolutions (the first convolution has no padding, so the fold is exact).
Where dlib's ``add_prev`` adds tensors of different sizes, the smaller one is
zero-padded at the end of each dimension, as dlib does. Output: [1, 128].
"""

from pathlib import Path

import numpy as np

from models.tools.dlib_reader import Affine, Conv, DlibResNet, read_resnet
from models.tools.tflite_writer import GraphWriter

RGB_MEAN = np.array([122.782, 117.001, 104.298], dtype=np.float64)
CHIP_SIZE = 150


def _fold(conv: Conv, affine: Affine) -> tuple[np.ndarray, np.ndarray]:
    """TFLite weights [out, h, w, in] and bias of ``affine(conv(x))``."""
    gamma = affine.gamma.astype(np.float64)
    weights = conv.weights.astype(np.float64) * gamma[:, None, None, None]
    bias = conv.bias.astype(np.float64) * gamma + affine.beta
    return weights.transpose(0, 2, 3, 1), bias


def _fold_input(weights: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fold ``(v - mean) / 256`` into a convolution without padding."""
    return weights / 256.0, bias - (weights * RGB_MEAN).sum(axis=(1, 2, 3)) / 256.0


def _match(g: GraphWriter, a: int, b: int, name: str) -> tuple[int, int]:
    """Zero-pad the smaller of ``a`` / ``b`` in each dimension (dlib's add_prev)."""
    target = tuple(max(x, y) for x, y in zip(g.shapes[a], g.shapes[b], strict=True))
    out = []
    for i, t in enumerate((a, b)):
        pads = [(0, m - s) for s, m in zip(g.shapes[t], target, strict=True)]
        out.append(g.pad(t, pads, f"{name}/pad{i}") if any(p for _, p in pads) else t)
    return out[0], out[1]


def build_tflite(net: DlibResNet) -> bytes:
    """The TFLite flatbuffer of ``net``."""
    g = GraphWriter("dlib_face_recognition_resnet_model_v1 (converted by lifecert)")
    x = g.input("chip_rgb", (1, CHIP_SIZE, CHIP_SIZE, 3))
    w, b = _fold_input(*_fold(net.convs[0], net.affines[0]))
    x = g.conv2d(
        x,
        w.astype(np.float32),
        b.astype(np.float32),
        stride=net.convs[0].stride,
        same=False,
        relu=True,
        name="conv0",
    )
    x = g.pool(x, 3, 2, average=False, name="maxpool")
    for i in range(1, len(net.convs), 2):
        first, second = net.convs[i], net.convs[i + 1]
        name = f"block{(i + 1) // 2}"
        w, b = _fold(first, net.affines[i])
        h = g.conv2d(
            x,
            w.astype(np.float32),
            b.astype(np.float32),
            stride=first.stride,
            same=first.padding > 0,
            relu=True,
            name=f"{name}/conv_a",
        )
        w, b = _fold(second, net.affines[i + 1])
        h = g.conv2d(
            h,
            w.astype(np.float32),
            b.astype(np.float32),
            stride=second.stride,
            same=True,
            relu=False,
            name=f"{name}/conv_b",
        )
        skip = g.pool(x, 2, 2, average=True, name=f"{name}/skip") if first.stride == 2 else x
        h, skip = _match(g, h, skip, name)
        x = g.add(h, skip, relu=True, name=f"{name}/add")
    x = g.spatial_mean(x, "global_pool")
    x = g.dense(x, np.ascontiguousarray(net.fc.T), "embedding")
    return g.finish([x])


def convert(dat_path: Path, out_path: Path) -> Path:
    """Read the dlib ``.dat`` and write the TFLite model to ``out_path``."""
    out_path.write_bytes(build_tflite(read_resnet(dat_path)))
    return out_path
