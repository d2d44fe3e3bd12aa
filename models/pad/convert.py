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

import numpy as np

from models.tools.onnx_import import OnnxImporter, load
from models.tools.tflite_writer import GraphWriter

INPUT_SIZE = 80


def build_tflite(paths: Sequence[Path]) -> bytes:
    """One TFLite model averaging the softmaxes of the ONNX models at ``paths``."""
    g = GraphWriter("MiniFASNet ensemble (converted from ONNX by lifecert)")
    x = g.input("crops_bgr", (1, INPUT_SIZE, INPUT_SIZE, 3 * len(paths)))
    probs = []
    for i, path in enumerate(paths):
        importer = OnnxImporter(g, load(path), path.stem, slice(3 * i, 3 * i + 3))
        (logits,) = importer.run(x)
        probs.append(g.softmax(logits, f"{path.stem}/softmax"))
    total = probs[0]
    for i, p in enumerate(probs[1:]):
        total = g.add(total, p, False, f"ensemble/sum{i}")
    weight = g.const("ensemble/weight", np.full(3, 1 / len(paths), np.float32))
    return g.finish([g.mul(total, weight, "ensemble/mean")])
