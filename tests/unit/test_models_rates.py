"""Error rates at a fixed threshold: counts per subject, exact and subject-bootstrap intervals."""

import numpy as np
import pytest

from models.tools.metrics import counts_at
from models.tools.rates import SubjectCounts, clopper_pearson, false_match_triples


def test_clopper_pearson_matches_known_intervals() -> None:
    low, high = clopper_pearson(0, 100)
    assert low == 0 and high == pytest.approx(0.0362, abs=1e-4)  # 1 - 0.025 ** (1 / 100)
    low, high = clopper_pearson(10, 100)
    assert (low, high) == pytest.approx((0.0490, 0.1762), abs=1e-4)
    assert all(np.isnan(clopper_pearson(0, 0)))


def brute_force(
    probes: np.ndarray,
    probe_labels: np.ndarray,
    refs: np.ndarray,
    ref_labels: np.ndarray,
    exclude: np.ndarray,
    t: float,
) -> tuple[int, int, int, int]:
    """(false matches, impostors, misses, genuines) one comparison at a time."""
    fm = imp = miss = gen = 0
    for i, (r, a) in enumerate(zip(refs, ref_labels, strict=True)):
        for j, (p, b) in enumerate(zip(probes, probe_labels, strict=True)):
            d = float(np.linalg.norm(r - p))
            if a != b:
                imp += 1
                fm += d <= t
            elif j != exclude[i]:
                gen += 1
                miss += d > t
    return fm, imp, miss, gen


def test_counts_at_agree_with_one_comparison_at_a_time() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 7, 60)
    probes = rng.normal(size=(60, 4)) + labels[:, None] * 0.3
    refs = probes[::2] + rng.normal(scale=0.2, size=(30, 4))
    counts = counts_at(1.2, probes, labels, refs, labels[::2], exclude=np.arange(0, 60, 2), chunk=7)
    fmr, fnmr = counts.rates()
    expected = brute_force(probes, labels, refs, labels[::2], np.arange(0, 60, 2), 1.2)
    assert (fmr.errors, fmr.trials, fnmr.errors, fnmr.trials) == expected
    assert 0 < fmr.errors < fmr.trials and 0 < fnmr.errors < fnmr.trials


def test_subject_bootstrap_is_wider_than_exact_when_errors_cluster() -> None:
    """100 subjects, 10 images each, all the false matches between two of them: resampling
    subjects shows how much the rate hangs on that pair; the binomial interval does not."""
    n = np.full(100, 10)
    clustered = SubjectCounts(
        refs=n, probes=n, genuine=np.full(100, 90), misses=np.r_[np.full(50, 9), np.zeros(50)],
        false_matches=np.array([[3, 7, 99]]),
    )  # fmt: skip
    fmr, fnmr = clustered.rates()
    assert fmr.trials == 1000 * 1000 - 100 * 100 and fmr.errors == 99
    assert fnmr.errors == 450 and fnmr.trials == 9000 and fnmr.value == 0.05
    assert fmr.bootstrap is not None and fnmr.bootstrap is not None
    width = fmr.bootstrap[1] - fmr.bootstrap[0]
    assert width > 10 * (fmr.exact[1] - fmr.exact[0])
    assert fmr.bootstrap[0] == 0  # about 6 replicates in 10 miss subject 3 or subject 7
    assert fnmr.bootstrap[0] < fnmr.exact[0] < fnmr.exact[1] < fnmr.bootstrap[1]
    assert clustered.rates() == (fmr, fnmr)  # seeded: the report is repeatable


def test_no_errors_leaves_only_the_exact_bound() -> None:
    n = np.full(5, 3)
    counts = SubjectCounts(n, n, np.full(5, 6), np.zeros(5, np.int64), np.zeros((0, 3), np.int64))
    fmr, fnmr = counts.rates()
    assert (fmr.errors, fmr.trials, fmr.bootstrap) == (0, 15 * 15 - 5 * 9, None)
    assert fnmr.bootstrap is None and fnmr.exact[0] == 0 < fnmr.exact[1]


def test_unordered_pairs_count_each_pair_of_subjects_once() -> None:
    n = np.array([2, 3, 4])
    counts = SubjectCounts(
        n, n, np.array([1, 3, 6]), np.zeros(3, np.int64), false_match_triples(
            np.array([0, 0, 1]), np.array([1, 1, 2])
        ), unordered=True,
    )  # fmt: skip
    fmr, _ = counts.rates()
    assert fmr.trials == 2 * 3 + 2 * 4 + 3 * 4 and fmr.errors == 3
    assert false_match_triples(np.array([0, 0, 1]), np.array([1, 1, 2])).tolist() == [
        [0, 1, 2],
        [1, 2, 1],
    ]


def test_no_subjects_give_no_rates() -> None:
    empty = np.zeros(0, np.int64)
    fmr, fnmr = SubjectCounts(empty, empty, empty, empty, np.zeros((0, 3), np.int64)).rates()
    assert (fmr.trials, fnmr.trials, fmr.bootstrap) == (0, 0, None)
    assert np.isnan(fmr.value) and all(np.isnan(fnmr.exact))
