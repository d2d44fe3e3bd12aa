"""Miura's shift-tolerant match of two binary vein templates.

The reference, cropped by ``ch`` rows and ``cw`` columns on each side, slides
over the probe; the best overlap count ``Nm`` is normalised by the vein
pixels of both the crop and the probe window it lands on, giving a score in
[0, 0.5] (0.5 = identical patterns).
"""

import numpy as np
from scipy import signal

CH = 20
"""Default vertical search (pixels, along the finger)."""
CW = 12
"""Default horizontal search (pixels, across the finger)."""


def match(reference: np.ndarray, probe: np.ndarray, ch: int = CH, cw: int = CW) -> float:
    """Similarity in [0, 0.5] of two binary templates of one shape; tolerates ±ch, ±cw shifts."""
    if reference.shape != probe.shape or reference.ndim != 2:
        raise ValueError(f"templates differ in shape: {reference.shape} vs {probe.shape}")
    height, width = reference.shape
    crop = reference[ch : height - ch, cw : width - cw].astype(np.float32)
    if crop.size == 0:
        raise ValueError(f"templates of {height}x{width} are too small for ch={ch}, cw={cw}")
    img = probe.astype(np.float32)
    overlap = np.rint(signal.fftconvolve(img, crop[::-1, ::-1], mode="valid"))
    ty, tx = np.unravel_index(int(np.argmax(overlap)), overlap.shape)
    window = img[ty : ty + crop.shape[0], tx : tx + crop.shape[1]]
    total = float(crop.sum() + window.sum())
    return 0.0 if total == 0 else float(overlap[ty, tx]) / total
