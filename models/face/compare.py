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


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two templates (dlib's trained metric)."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def compare(probe: np.ndarray, reference: np.ndarray, threshold: Threshold, mode: str) -> Match:
    """Compare a live template with a reference under one mode's threshold."""
    return Match(distance(probe, reference), threshold.distance, mode)
