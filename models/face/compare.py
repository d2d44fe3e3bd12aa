"""Template comparison: distance -> decision with the manifest's threshold."""

from dataclasses import dataclass

import numpy as np

from models.bundle import Threshold


@dataclass(frozen=True)
class Match:
    """Outcome of one comparison."""

    distance: float
    threshold: float
    mode: str

    @property
    def matched(self) -> bool:
        """True when the distance is within the threshold."""
        return self.distance <= self.threshold


def distance(a: np.ndarray, b: np.ndarray, *, unit: bool = False) -> float:
    """Euclidean distance between two templates (dlib's trained metric); with ``unit``,
    between the templates scaled to length 1 (so templates kept by older bundles compare
    on the same scale)."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if unit:
        x = x / max(float(np.linalg.norm(x)), 1e-12)
        y = y / max(float(np.linalg.norm(y)), 1e-12)
    return float(np.linalg.norm(x - y))


def compare(probe: np.ndarray, reference: np.ndarray, threshold: Threshold, mode: str) -> Match:
    """Compare a live template with a reference under one mode's threshold."""
    unit = threshold.metric == "euclidean_unit"
    return Match(distance(probe, reference, unit=unit), threshold.distance, mode)
