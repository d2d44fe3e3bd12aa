"""From an 8-bit NIR finger image to a binary vein template of a fixed frame."""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from models.vein.curvature import binarise, maximum_curvature
from models.vein.region import finger_mask


@dataclass(frozen=True)
class VeinParams:
    """Extraction settings (the defaults are the ones evaluated on campus64)."""

    sigma: float = 3.0
    """Scale (pixels) of the Gaussian derivatives: about half a vein's width."""
    edge_search: float = 0.3
    """Fraction of the width, from each side, searched for a finger edge."""
    height: int = 170
    """Template rows (along the finger); images are scaled to this height."""
    width: int = 96
    """Template columns (across the finger); the finger is centred, zero-padded or cropped."""


def _fit(template: np.ndarray, width: int) -> np.ndarray:
    """Centre ``template`` in ``width`` columns (pad with background or crop)."""
    have = template.shape[1]
    if have >= width:
        start = (have - width) // 2
        return template[:, start : start + width]
    left = (width - have) // 2
    return np.pad(template, ((0, 0), (left, width - have - left)))


def extract(image: np.ndarray, params: VeinParams | None = None) -> np.ndarray:
    """Binary vein template (bool, ``params.height`` x ``params.width``) of a 2-D uint8 image.

    The finger must lie along the rows (fingertip up or down).
    """
    params = params or VeinParams()
    if image.ndim != 2 or min(image.shape) < 16:
        raise ValueError(f"expected a 2-D grey finger image, got shape {image.shape}")
    if image.shape[0] != params.height:
        image = ndimage.zoom(image.astype(np.float32), params.height / image.shape[0], order=1)
    mask = finger_mask(image, search=params.edge_search)
    return _fit(binarise(maximum_curvature(image, mask, params.sigma)), params.width)
