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


def unit(template: np.ndarray) -> np.ndarray:
    """``template`` scaled to length 1 (a zero template stays zero)."""
    norm = float(np.linalg.norm(template))
    return template / norm if norm > 0 else template


def distance(a: np.ndarray, b: np.ndarray, *, unit_length: bool = False) -> float:
    """Euclidean distance between two templates; with ``unit_length``, between the
    templates scaled to length 1 (so templates kept by older bundles compare on the same
    scale)."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if unit_length:
        x, y = unit(x), unit(y)
    return float(np.linalg.norm(x - y))


def compare(probe: np.ndarray, reference: np.ndarray, threshold: Threshold, mode: str) -> Match:
    """Compare a live template with a reference under one mode's threshold."""
    unit_length = threshold.metric == "euclidean_unit"
    return Match(distance(probe, reference, unit_length=unit_length), threshold.distance, mode)
