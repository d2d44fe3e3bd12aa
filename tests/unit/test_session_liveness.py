"""Challenge judging on landmark-measure sequences (synthetic: LFW has only stills)."""

import random

import pytest

from edge.session.liveness import Limits, baseline, done, pick
from edge.session.model import Challenge, Measures

BASE = Measures(eye=0.3, mouth=0.05, yaw=2.0, pitch=8.0)
LIMITS = Limits()


def moved(**delta: float) -> Measures:
    values = {k: getattr(BASE, k) + delta.get(k, 0.0) for k in ("eye", "mouth", "yaw", "pitch")}
    return Measures(**values)


ACTIONS = {
    Challenge.TURN_LEFT: [moved(yaw=8), moved(yaw=20), moved(yaw=5)],
    Challenge.TURN_RIGHT: [moved(yaw=-9), moved(yaw=-21)],
    Challenge.OPEN_MOUTH: [moved(mouth=0.1), moved(mouth=0.4)],
    Challenge.BLINK: [moved(eye=-0.05), moved(eye=-0.2), moved(eye=0.0)],
    Challenge.NOD: [moved(pitch=-6), moved(pitch=-14), moved(pitch=-1)],
}


@pytest.mark.parametrize("challenge", list(Challenge))
def test_each_action_passes_only_its_own_challenge(challenge: Challenge) -> None:
    assert done(challenge, BASE, ACTIONS[challenge], LIMITS)
    still = [BASE] * 50
    assert not done(challenge, BASE, still, LIMITS)


def test_turns_are_directional() -> None:
    assert not done(Challenge.TURN_RIGHT, BASE, ACTIONS[Challenge.TURN_LEFT], LIMITS)
    assert not done(Challenge.TURN_LEFT, BASE, ACTIONS[Challenge.TURN_RIGHT], LIMITS)


def test_blink_and_nod_need_the_way_back() -> None:
    assert not done(Challenge.BLINK, BASE, [moved(eye=-0.2)] * 10, LIMITS)
    assert not done(Challenge.NOD, BASE, [moved(pitch=-15)] * 10, LIMITS)


def test_small_jitter_of_a_held_photo_passes_nothing() -> None:
    rng = random.Random(3)
    jitter = [
        moved(
            eye=rng.uniform(-0.02, 0.02),
            mouth=rng.uniform(-0.02, 0.02),
            yaw=rng.uniform(-4, 4),
            pitch=rng.uniform(-3, 3),
        )
        for _ in range(200)
    ]
    assert not any(done(c, BASE, jitter, LIMITS) for c in Challenge)


def test_pick_gives_two_different_challenges_in_varying_order() -> None:
    rng = random.Random(1)
    picks = {pick(rng, list(Challenge)) for _ in range(200)}
    assert all(len(set(p)) == 2 for p in picks)
    assert len(picks) == 20  # every ordered pair of 5 challenges turns up
    assert pick(rng, [Challenge.NOD]) == (Challenge.NOD,)


def test_baseline_is_the_median() -> None:
    series = [moved(yaw=0), moved(yaw=30), moved(yaw=1)]
    assert baseline(series).yaw == pytest.approx(BASE.yaw + 1)
