"""Verification metrics: k-fold thresholds, FNMR at FMR, EER, ordered-pair counting."""

import numpy as np
import pytest

from models.tools.metrics import ImpostorHistogram, best_threshold, cross_curve, kfold_accuracy


def test_best_threshold_separates_separable_scores() -> None:
    dist = np.array([0.1, 0.2, 0.3, 0.7, 0.8])
    same = np.array([True, True, True, False, False])
    assert best_threshold(dist, same) == pytest.approx(0.5)


def test_kfold_picks_the_threshold_on_the_other_folds() -> None:
    rng = np.random.default_rng(0)
    folds = np.repeat(np.arange(4), 100)
    same = np.tile(np.r_[np.ones(50, bool), np.zeros(50, bool)], 4)
    dist = np.where(same, rng.normal(0.4, 0.05, 400), rng.normal(0.8, 0.05, 400))
    accs, thresholds = kfold_accuracy(dist, same, folds)
    assert len(accs) == 4 and (accs >= 0.98).all()
    assert (abs(thresholds - 0.6) < 0.1).all()


def test_fnmr_at_fmr_and_eer_on_known_distributions() -> None:
    rng = np.random.default_rng(1)
    genuine = rng.uniform(0.0, 0.6, 10_000)
    hist = ImpostorHistogram()
    hist.add(rng.uniform(0.5, 1.5, 1_000_000))
    curve = hist.curve(genuine)
    t, fnmr = curve.at_fmr(1e-2)  # impostors below 0.51 -> 1%
    assert t == pytest.approx(0.51, abs=2e-3)
    assert fnmr == pytest.approx(0.15, abs=0.01)  # genuines above 0.51
    eer, t_eer = curve.eer()
    # FMR = t - 0.5 meets FNMR = (0.6 - t) / 0.6 at t = 0.5625
    assert eer == pytest.approx(0.0625, abs=0.005)
    assert t_eer == pytest.approx(0.5625, abs=0.005)


def test_every_reference_meets_every_other_probe_once() -> None:
    probes = np.array([[0.0, 0], [0.1, 0], [1.0, 0], [1.1, 0], [5.0, 0]])
    refs = probes + np.array([0.0, 0.05])  # a reference differs from its own image's probe
    labels = np.array([0, 0, 1, 1, 2])
    curve = cross_curve(probes, labels, refs, labels, exclude=np.arange(5), chunk=2)
    # ordered genuine pairs (a reference never meets its own image's probe): 0-1, 1-0, 2-3, 3-2
    assert curve.genuines == 4 and curve.impostors == 5 * 5 - 5 - 4
    assert curve.at_fmr(0.0)[1] == 0.0  # all genuines (~0.11) below the first impostor (~0.9)
