"""Compact bytes for a binary vein template (to cache or seal): shape header + packed bits."""

import struct

import numpy as np

_HEADER = struct.Struct(">2sHH")
_MAGIC = b"VT"


def pack(template: np.ndarray) -> bytes:
    """Serialise a 2-D boolean template (about 1.7 KB for 170x80)."""
    if template.ndim != 2:
        raise ValueError(f"expected a 2-D template, got shape {template.shape}")
    height, width = template.shape
    return _HEADER.pack(_MAGIC, height, width) + np.packbits(template.astype(bool)).tobytes()


def unpack(data: bytes) -> np.ndarray:
    """The template that ``pack`` serialised; ``ValueError`` on anything else."""
    if len(data) < _HEADER.size:
        raise ValueError("vein template too short")
    magic, height, width = _HEADER.unpack_from(data)
    bits = np.frombuffer(data, dtype=np.uint8, offset=_HEADER.size)
    if magic != _MAGIC or bits.size != (height * width + 7) // 8:
        raise ValueError("not a vein template (bad magic or length)")
    return np.unpackbits(bits, count=height * width).reshape(height, width).astype(bool)
