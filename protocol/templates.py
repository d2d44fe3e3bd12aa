"""Serialised biometric templates: what a terminal seals and central opens.

A face template travels as UTF-8 JSON, sealed (``protocol.sealing``) inside the
signed result::

    {"format": "lifecert-template/1", "kind": "face", "model": "<embedder id>",
     "dim": 128, "vector": "<base64 of dim little-endian float32>"}

``model`` names the embedder (the bundle's embedder SHA-256 prefix or file name), so
templates from different models are never compared. Vectors are compared by the
Euclidean distance of the vectors scaled to length 1.
"""

import base64
import binascii
import json
import math
import struct
from dataclasses import dataclass
from typing import Final

from protocol.errors import MessageError

FORMAT: Final = "lifecert-template/1"
MAX_DIM: Final = 1024


@dataclass(frozen=True)
class Template:
    """A decoded template."""

    kind: str
    model: str
    vector: tuple[float, ...]


def encode(vector: "list[float] | tuple[float, ...]", model: str, kind: str = "face") -> bytes:
    """The JSON bytes for a template (float32, little-endian)."""
    if not 0 < len(vector) <= MAX_DIM:
        raise MessageError(f"template of {len(vector)} values: 1..{MAX_DIM} expected")
    packed = struct.pack(f"<{len(vector)}f", *vector)
    body = {
        "format": FORMAT,
        "kind": kind,
        "model": model,
        "dim": len(vector),
        "vector": base64.b64encode(packed).decode(),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def decode(data: bytes) -> Template:
    """Parse template bytes; ``MessageError`` naming what is wrong."""
    try:
        body = json.loads(data)
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise MessageError(f"not a {FORMAT} template")
        kind, model, dim = body["kind"], body["model"], body["dim"]
        if not (isinstance(kind, str) and isinstance(model, str) and isinstance(dim, int)):
            raise MessageError("kind and model must be strings, dim an integer")
        packed = base64.b64decode(body["vector"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise MessageError(f"malformed template: {exc}") from None
    if not 0 < dim <= MAX_DIM or len(packed) != 4 * dim:
        raise MessageError(f"template vector has {len(packed)} bytes, dim says {dim}")
    vector = struct.unpack(f"<{dim}f", packed)
    if not all(math.isfinite(v) for v in vector):
        raise MessageError("template vector holds NaN or infinity")
    return Template(kind, model, vector)
