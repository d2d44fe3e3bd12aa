"""Finger region: the band between the two finger edges of a NIR finger image.

The finger lies along the image's long axis. Each cross-section (a line
across the finger) shows the finger as a bright band whose borders are the
strongest opposite intensity steps near the two sides; the mask keeps what lies
between them (a Lee-style mask), smoothed along the finger so a noisy
cross-section cannot cut a notch into it.
"""

import numpy as np
from scipy import ndimage


def finger_mask(image: np.ndarray, search: float = 0.3, smooth: int = 9) -> np.ndarray:
    """Boolean mask of the finger in ``image`` (rows along the finger, columns across it).

    ``search`` is the fraction of the width, from each side, where an edge is
    looked for; ``smooth`` the median window (rows) applied to the edge lines.
    """
    img = ndimage.gaussian_filter(image.astype(np.float32), 1.5)
    width = img.shape[1]
    band = max(2, int(width * search))
    grad = ndimage.sobel(img, axis=1)
    # left edge: dark outside -> bright finger (positive step); right edge: the opposite.
    left = np.argmax(grad[:, :band], axis=1)
    right = width - band + np.argmin(grad[:, width - band :], axis=1)
    left = ndimage.median_filter(left, size=smooth, mode="nearest")
    right = ndimage.median_filter(right, size=smooth, mode="nearest")
    cols = np.arange(width)[None, :]
    return (cols >= left[:, None]) & (cols <= right[:, None])
