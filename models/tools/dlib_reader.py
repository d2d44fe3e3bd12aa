"""Read the weights of dlib's face-recognition ResNet from its own serialisation.

dlib writes a network layer by layer, input first. Integers are a length byte
(high bit = negative) followed by little-endian bytes; strings are an integer
length then the bytes; tensors (version 2) are ``n, k, nr, nc`` then raw
little-endian float32. We walk the file, pick out every ``con_4``, ``affine_``
and ``fc_2`` record in order and check each against the layer it must be.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.errors import ModelBuildError


@dataclass(frozen=True)
class Conv:
    """A convolution: ``weights`` [out, in, h, w] (dlib's order), bias [out], stride, padding."""

    weights: np.ndarray
    bias: np.ndarray
    stride: int
    padding: int


@dataclass(frozen=True)
class Affine:
    """Per-channel ``gamma * x + beta`` (batch norm frozen at training end)."""

    gamma: np.ndarray
    beta: np.ndarray


@dataclass(frozen=True)
class DlibResNet:
    """The layers of ``dlib_face_recognition_resnet_model_v1`` in file order."""

    convs: list[Conv]
    affines: list[Affine]
    fc: np.ndarray  # [in, out]: dlib's fc computes ``x @ fc``


class _Stream:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def integer(self) -> int:
        head = self.data[self.pos]
        size, negative = head & 0x0F, bool(head & 0x80)
        if size > 8:
            raise ModelBuildError(f"bad integer header {head:#x} at byte {self.pos}")
        raw = self.data[self.pos + 1 : self.pos + 1 + size]
        self.pos += 1 + size
        value = int.from_bytes(raw, "little")
        return -value if negative else value

    def tensor(self) -> np.ndarray:
        if self.integer() != 2:
            raise ModelBuildError(f"unknown tensor version at byte {self.pos}")
        shape = [self.integer() for _ in range(4)]
        count = int(np.prod(shape))
        end = self.pos + 4 * count
        values = np.frombuffer(self.data[self.pos : end], dtype="<f4").reshape(shape)
        self.pos = end
        return values.astype(np.float32)

    def seek_tag(self, tag: bytes) -> None:
        marker = bytes([1, len(tag)]) + tag
        found = self.data.find(marker, self.pos)
        if found < 0:
            raise ModelBuildError(f"layer {tag.decode()!r} not found after byte {self.pos}")
        self.pos = found + len(marker)

    def next_tag_position(self, tags: list[bytes]) -> tuple[int, bytes] | None:
        hits = [(self.data.find(bytes([1, len(t)]) + t, self.pos), t) for t in tags]
        hits = [h for h in hits if h[0] >= 0]
        return min(hits) if hits else None


def read_resnet(path: Path) -> DlibResNet:
    """Parse ``path`` (``dlib_face_recognition_resnet_model_v1.dat``)."""
    data = path.read_bytes()
    if b"loss_metric_2" not in data[:64] or b"input_rgb_image_sized" not in data[:1024]:
        raise ModelBuildError(
            f"{path}: not dlib's metric-learning ResNet (no loss_metric_2 header)"
        )
    stream = _Stream(data)
    convs: list[Conv] = []
    affines: list[Affine] = []
    while (hit := stream.next_tag_position([b"con_4", b"affine_", b"fc_2"])) is not None:
        stream.seek_tag(hit[1])
        if hit[1] == b"con_4":
            convs.append(_read_con(stream))
        elif hit[1] == b"affine_":
            affines.append(_read_affine(stream, convs[-1].bias.size if convs else 0))
        else:
            fc = _read_fc(stream)
            break
    else:
        raise ModelBuildError(f"{path}: no fc_2 layer")
    if len(convs) != 29 or len(affines) != 29:
        raise ModelBuildError(f"{path}: {len(convs)} conv / {len(affines)} affine layers, want 29")
    return DlibResNet(convs, affines, fc)


def _read_con(stream: _Stream) -> Conv:
    params = stream.tensor().ravel()
    filters, nr, nc = stream.integer(), stream.integer(), stream.integer()
    stride_y, stride_x, pad_y, pad_x = (stream.integer() for _ in range(4))
    if (stride_y, pad_y) != (stride_x, pad_x) or nr != nc:
        raise ModelBuildError("only square kernels with equal strides/padding are expected")
    in_ch = (params.size - filters) // (filters * nr * nc)
    if in_ch * filters * nr * nc + filters != params.size:
        raise ModelBuildError(
            f"con_ parameter count {params.size} does not fit {filters}x{nr}x{nc}"
        )
    weights = params[:-filters].reshape(filters, in_ch, nr, nc)
    return Conv(weights, params[-filters:].copy(), stride_y, pad_y)


def _read_affine(stream: _Stream, channels: int) -> Affine:
    params = stream.tensor().ravel()
    if params.size != 2 * channels:
        raise ModelBuildError(f"affine_ has {params.size} values, want 2 x {channels}")
    return Affine(params[:channels].copy(), params[channels:].copy())


def _read_fc(stream: _Stream) -> np.ndarray:
    outputs, inputs = stream.integer(), stream.integer()
    params = stream.tensor().ravel()
    if params.size != outputs * inputs:
        raise ModelBuildError(f"fc_ has {params.size} values, want {inputs} x {outputs}")
    return params.reshape(inputs, outputs)
