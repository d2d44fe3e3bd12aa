"""Error rates at a fixed threshold: the comparisons behind them and two 95% intervals.

- **Clopper-Pearson** (exact binomial, ``scipy.stats.binomtest``): right if every comparison
  were an independent trial. All-pairs comparisons are not: one image or person takes part
  in thousands of them, so this interval is too narrow.
- **Subject bootstrap** (Bolle et al.'s "subsets bootstrap"): the subjects (identities,
  fingers) are drawn again with replacement, every comparison between two drawn subjects
  kept, and the rate recomputed; the 2.5th and 97.5th percentiles of the replicates. It
  keeps the correlation between comparisons of one subject, so it is the interval to quote.

Both use only per-subject counts, so a bootstrap replicate costs one weighted sum.
"""

from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

CONFIDENCE = 0.95
REPLICATES = 2000
CHUNK = 200


@dataclass(frozen=True)
class Rate:
    """``errors`` of ``trials`` comparisons and the two intervals (see the module)."""

    errors: int
    trials: int
    exact: tuple[float, float]
    bootstrap: tuple[float, float] | None
    """None without errors (or without a success): every replicate would give the same"""

    @property
    def value(self) -> float:
        """errors / trials (NaN without trials)."""
        return self.errors / self.trials if self.trials else float("nan")


def clopper_pearson(errors: int, trials: int) -> tuple[float, float]:
    """Exact binomial 95% interval of errors / trials (NaN without trials)."""
    if trials == 0:
        return float("nan"), float("nan")
    ci = binomtest(errors, trials).proportion_ci(CONFIDENCE, method="exact")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class SubjectCounts:
    """Per subject (labels ``0..K-1``) counts of the comparisons at one threshold.

    Impostor comparisons are every reference of a subject against every probe of another
    (``unordered``: each pair of subjects' comparisons counted once, as when every pair of
    images is scored once).
    """

    refs: np.ndarray
    """[K] references per subject"""
    probes: np.ndarray
    """[K] probes per subject"""
    genuine: np.ndarray
    """[K] genuine comparisons per subject"""
    misses: np.ndarray
    """[K] genuine comparisons that did not match"""
    false_matches: np.ndarray
    """[M, 3] (reference subject, probe subject, count) of impostor comparisons that matched"""
    unordered: bool = False

    def _impostors(self, w: np.ndarray) -> np.ndarray:
        r, p = self.refs.astype(np.float64), self.probes.astype(np.float64)
        pairs = (w @ r) * (w @ p) - (w**2) @ (r * p)
        return pairs / 2 if self.unordered else pairs

    def _errors(self, w: np.ndarray) -> np.ndarray:
        a, b, c = self.false_matches.T
        return (w[..., a] * w[..., b]) @ c.astype(np.float64)

    def rates(self, replicates: int = REPLICATES, seed: int = 0) -> tuple[Rate, Rate]:
        """(FMR, FNMR) with both intervals; ``seed`` makes the bootstrap repeatable."""
        k = len(self.refs)
        r, p = self.refs.astype(object), self.probes.astype(object)  # exact integers
        impostors = (int(r.sum()) * int(p.sum()) - int((r * p).sum())) // (
            2 if self.unordered else 1
        )
        false_matches = int(self.false_matches[:, 2].sum())
        genuine, misses = int(self.genuine.sum()), int(self.misses.sum())
        rng = np.random.default_rng(seed)
        fmr, fnmr = [np.zeros(0)], [np.zeros(0)]
        for start in range(0, replicates if k else 0, CHUNK):  # bounded memory: CHUNK x M products
            n = min(CHUNK, replicates - start)
            w = rng.multinomial(k, np.full(k, 1 / k), size=n).astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                fmr.append(self._errors(w) / self._impostors(w))
                fnmr.append((w @ self.misses) / (w @ self.genuine))
        return _rate(false_matches, impostors, fmr), _rate(misses, genuine, fnmr)


def _rate(errors: int, trials: int, replicates: list[np.ndarray]) -> Rate:
    """The rate with its exact interval and the central 95% of the finite replicates."""
    values = np.concatenate(replicates)
    finite = values[np.isfinite(values)]
    bootstrap = None
    if 0 < errors < trials and len(finite):
        low, high = np.percentile(finite, [50 * (1 - CONFIDENCE), 50 * (1 + CONFIDENCE)])
        bootstrap = float(low), float(high)
    return Rate(errors, trials, clopper_pearson(errors, trials), bootstrap)


def false_match_triples(ref_labels: np.ndarray, probe_labels: np.ndarray) -> np.ndarray:
    """[M, 3] (reference subject, probe subject, count) of the given matched impostor pairs."""
    pairs = np.stack([ref_labels, probe_labels], axis=1).astype(np.int64).reshape(-1, 2)
    if not len(pairs):
        return np.zeros((0, 3), np.int64)
    unique, counts = np.unique(pairs, axis=0, return_counts=True)
    return np.column_stack([unique, counts])
