"""Maximum-curvature vein extraction (after Miura, Nagasaka and Miyatake, 2007).

Veins are dark valleys in a NIR image: along any cross-section their profile
is concave (positive curvature). In four directions, every run of positive
curvature scores ``max curvature × run width`` at its deepest point; scores
are summed over directions, then a pixel keeps its value only where its
neighbours on both sides along some direction support it (connection step).
"""

import numpy as np
from scipy import ndimage

# (dy, dx) unit steps of the four cross-section directions.
_DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _curvatures(img: np.ndarray, sigma: float) -> list[np.ndarray]:
    """Curvature of the smoothed image along each of the four directions."""
    fx = ndimage.gaussian_filter(img, sigma, order=(0, 1))
    fy = ndimage.gaussian_filter(img, sigma, order=(1, 0))
    fxx = ndimage.gaussian_filter(img, sigma, order=(0, 2))
    fyy = ndimage.gaussian_filter(img, sigma, order=(2, 0))
    fxy = ndimage.gaussian_filter(img, sigma, order=(1, 1))
    out = []
    for dy, dx in _DIRECTIONS:
        norm = np.hypot(dy, dx)
        d1 = (dx * fx + dy * fy) / norm
        d2 = (dx * dx * fxx + 2 * dx * dy * fxy + dy * dy * fyy) / (norm * norm)
        out.append(d2 / (1.0 + d1 * d1) ** 1.5)
    return out


def _run_scores(kappa: np.ndarray, direction: tuple[int, int]) -> np.ndarray:
    """Score every run of positive curvature along ``direction`` at its maximum."""
    dy, dx = direction
    structure = np.zeros((3, 3), dtype=bool)
    structure[1, 1] = True
    structure[1 + dy, 1 + dx] = True
    structure[1 - dy, 1 - dx] = True
    labels, count = ndimage.label(kappa > 0, structure=structure)
    scores = np.zeros_like(kappa)
    if count == 0:
        return scores
    flat_labels = labels.ravel()
    flat_kappa = kappa.ravel()
    inside = np.flatnonzero(flat_labels)
    widths = np.bincount(flat_labels[inside], minlength=count + 1)
    # the last index of each label after sorting by (label, kappa) is that run's maximum
    order = inside[np.lexsort((flat_kappa[inside], flat_labels[inside]))]
    sorted_labels = flat_labels[order]
    last = np.flatnonzero(np.diff(sorted_labels, append=count + 1))
    peaks = order[last]
    run = flat_labels[peaks]
    scores.ravel()[peaks] = flat_kappa[peaks] * widths[run]
    return scores


def _shift(values: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``values`` moved so that out[y, x] = values[y + dy, x + dx] (zeros outside)."""
    out = np.zeros_like(values)
    h, w = values.shape
    ys, yd = (slice(dy, h), slice(0, h - dy)) if dy >= 0 else (slice(0, h + dy), slice(-dy, h))
    xs, xd = (slice(dx, w), slice(0, w - dx)) if dx >= 0 else (slice(0, w + dx), slice(-dx, w))
    out[yd, xd] = values[ys, xs]
    return out


def maximum_curvature(image: np.ndarray, mask: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """Vein-centre strength (float, >= 0) of ``image`` inside ``mask``."""
    img = image.astype(np.float64)
    kappas = _curvatures(img, sigma)
    v = np.zeros_like(img)
    for kappa, direction in zip(kappas, _DIRECTIONS, strict=True):
        v += _run_scores(np.where(mask, kappa, 0.0), direction)
    connected = np.zeros_like(v)
    for dy, dx in _DIRECTIONS:
        ahead = np.maximum(_shift(v, dy, dx), _shift(v, 2 * dy, 2 * dx))
        behind = np.maximum(_shift(v, -dy, -dx), _shift(v, -2 * dy, -2 * dx))
        connected = np.maximum(connected, np.minimum(v + ahead, v + behind))
    return np.where(mask, connected, 0.0)


def binarise(strength: np.ndarray) -> np.ndarray:
    """Vein pixels: strength above the median of the positive strengths."""
    positive = strength[strength > 0]
    if positive.size == 0:
        return np.zeros(strength.shape, dtype=bool)
    return strength > np.median(positive)
