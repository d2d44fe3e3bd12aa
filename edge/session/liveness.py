"""Active liveness: judge one challenge from the landmark measures seen while it ran.

Pure functions of a baseline (the neutral face at capture) and the series of
measures that followed the prompt. A still picture (a printed photo, a phone
showing one image) never changes its measures, so it passes no challenge.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass

from edge.session.model import Challenge, Measures


@dataclass(frozen=True)
class Limits:
    """How far a measure must move from the baseline to count."""

    turn_deg: float = 18.0
    nod_deg: float = 10.0
    blink_ratio: float = 0.6
    mouth_open: float = 0.3


def pick(rng: random.Random, allowed: Sequence[Challenge], count: int = 2) -> tuple[Challenge, ...]:
    """``count`` different challenges in random order (all of them if fewer are allowed)."""
    pool = list(dict.fromkeys(allowed))
    return tuple(rng.sample(pool, min(count, len(pool))))


def baseline(series: Sequence[Measures]) -> Measures:
    """Median of each measure over the neutral frames."""

    def med(values: list[float]) -> float:
        ordered = sorted(values)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2

    return Measures(
        eye=med([m.eye for m in series]),
        mouth=med([m.mouth for m in series]),
        yaw=med([m.yaw for m in series]),
        pitch=med([m.pitch for m in series]),
    )


def done(challenge: Challenge, base: Measures, series: Sequence[Measures], limits: Limits) -> bool:
    """True once ``series`` shows the action ``challenge`` asks for."""
    if challenge is Challenge.TURN_LEFT:  # nose towards the image's right: yaw grows
        return any(m.yaw - base.yaw >= limits.turn_deg for m in series)
    if challenge is Challenge.TURN_RIGHT:
        return any(base.yaw - m.yaw >= limits.turn_deg for m in series)
    if challenge is Challenge.OPEN_MOUTH:
        need = max(limits.mouth_open, base.mouth + limits.mouth_open / 2)
        return any(m.mouth >= need for m in series)
    if challenge is Challenge.BLINK:
        return _down_and_back(
            [m.eye for m in series], base.eye * limits.blink_ratio, base.eye * 0.85
        )
    # NOD: chin down (pitch falls), then back up near the baseline
    return _down_and_back(
        [m.pitch for m in series], base.pitch - limits.nod_deg, base.pitch - limits.nod_deg / 2
    )


def _down_and_back(values: Sequence[float], low: float, back: float) -> bool:
    dipped = False
    for v in values:
        if v <= low:
            dipped = True
        elif dipped and v >= back:
            return True
    return False
