"""Verification metrics on distances (smaller = more alike)."""

from dataclasses import dataclass

import numpy as np

from models.tools.rates import SubjectCounts, false_match_triples


def kfold_accuracy(
    dist: np.ndarray, same: np.ndarray, folds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-fold accuracy and threshold, each threshold chosen on the other folds."""
    accs, thresholds = [], []
    for k in np.unique(folds):
        train = folds != k
        t = best_threshold(dist[train], same[train])
        test = ~train
        accs.append(float(((dist[test] <= t) == same[test]).mean()))
        thresholds.append(t)
    return np.array(accs), np.array(thresholds)


def best_threshold(dist: np.ndarray, same: np.ndarray) -> float:
    """Threshold with the best accuracy (midpoint between neighbouring distances)."""
    order = np.argsort(dist, kind="stable")
    d, s = dist[order], same[order]
    # accepting the first i pairs: correct = genuines among them + impostors after them
    correct = np.concatenate([[0], np.cumsum(s)]) + np.concatenate(
        [[(~s).sum()], (~s).sum() - np.cumsum(~s)]
    )
    i = int(np.argmax(correct))
    if i == 0:
        return float(d[0] - 1e-6)
    if i == len(d):
        return float(d[-1] + 1e-6)
    return float((d[i - 1] + d[i]) / 2)


@dataclass(frozen=True)
class ErrorCurve:
    """FMR and FNMR against a grid of thresholds, from exact genuine distances and a
    fine histogram of (possibly millions of) impostor distances."""

    thresholds: np.ndarray
    fmr: np.ndarray
    fnmr: np.ndarray
    impostors: int
    genuines: int

    def at_fmr(self, target: float) -> tuple[float, float]:
        """(threshold, FNMR) at the largest threshold whose FMR does not exceed ``target``."""
        ok = np.nonzero(self.fmr <= target)[0]
        i = int(ok[-1]) if len(ok) else 0
        return float(self.thresholds[i]), float(self.fnmr[i])

    def eer(self) -> tuple[float, float]:
        """(EER, threshold) where FMR and FNMR cross."""
        i = int(np.argmin(np.abs(self.fmr - self.fnmr)))
        return float((self.fmr[i] + self.fnmr[i]) / 2), float(self.thresholds[i])


class ImpostorHistogram:
    """Accumulates impostor distances chunk by chunk into fine bins."""

    def __init__(self, upper: float = 2.0, bins: int = 200_000) -> None:
        self.edges = np.linspace(0.0, upper, bins + 1)
        self.counts = np.zeros(bins, dtype=np.int64)

    def add(self, dist: np.ndarray) -> None:
        """Count more impostor distances."""
        idx = np.clip(
            np.searchsorted(self.edges, dist.ravel(), side="right") - 1, 0, len(self.counts) - 1
        )
        self.counts += np.bincount(idx, minlength=len(self.counts))

    def curve(self, genuine: np.ndarray) -> ErrorCurve:
        """FMR/FNMR at every bin's upper edge (accept when distance <= edge)."""
        thresholds = self.edges[1:]
        total = int(self.counts.sum())
        fmr = np.cumsum(self.counts) / max(total, 1)
        g = np.sort(genuine)
        fnmr = 1.0 - np.searchsorted(g, thresholds, side="right") / max(len(g), 1)
        return ErrorCurve(thresholds, fmr, fnmr, total, len(g))


def cross_curve(
    probes: np.ndarray,
    probe_labels: np.ndarray,
    refs: np.ndarray,
    ref_labels: np.ndarray,
    *,
    exclude: np.ndarray | None = None,
    chunk: int = 512,
) -> ErrorCurve:
    """References against probes: same label genuine, other labels impostor.
    ``exclude`` [n_refs] is the probe index of each reference's own source image."""
    p = probes.astype(np.float64)
    sq = (p**2).sum(1)
    hist = ImpostorHistogram()
    genuine = []
    for start in range(0, len(refs), chunk):
        r = refs[start : start + chunk].astype(np.float64)
        dist = np.sqrt(np.clip((r**2).sum(1)[:, None] + sq[None, :] - 2 * r @ p.T, 0, None))
        same = ref_labels[start : start + chunk, None] == probe_labels[None, :]
        if exclude is not None:
            own = np.zeros_like(same)
            own[np.arange(len(r)), exclude[start : start + chunk]] = True
            same_ok = same & ~own
        else:
            same_ok = same
        genuine.append(dist[same_ok])
        hist.add(dist[~same])
    return hist.curve(np.concatenate(genuine))


def counts_at(
    threshold: float,
    probes: np.ndarray,
    probe_labels: np.ndarray,
    refs: np.ndarray,
    ref_labels: np.ndarray,
    *,
    exclude: np.ndarray | None = None,
    chunk: int = 512,
) -> SubjectCounts:
    """The comparisons of :func:`cross_curve` at one threshold (match when distance <=
    ``threshold``), counted per subject; labels must be ``0..K-1``."""
    k = int(max(probe_labels.max(initial=-1), ref_labels.max(initial=-1))) + 1
    p = probes.astype(np.float64)
    sq = (p**2).sum(1)
    genuine = np.zeros(k, np.int64)
    misses = np.zeros(k, np.int64)
    matched_refs, matched_probes = [], []
    for start in range(0, len(refs), chunk):
        r = refs[start : start + chunk].astype(np.float64)
        labels = ref_labels[start : start + chunk]
        dist = np.sqrt(np.clip((r**2).sum(1)[:, None] + sq[None, :] - 2 * r @ p.T, 0, None))
        same = labels[:, None] == probe_labels[None, :]
        counted = same.copy()
        if exclude is not None:
            counted[np.arange(len(r)), exclude[start : start + chunk]] = False
        genuine += np.bincount(labels, counted.sum(1), minlength=k).astype(np.int64)
        misses += np.bincount(labels, (counted & (dist > threshold)).sum(1), minlength=k).astype(
            np.int64
        )
        rows, cols = np.nonzero(~same & (dist <= threshold))
        matched_refs.append(labels[rows])
        matched_probes.append(probe_labels[cols])
    return SubjectCounts(
        refs=np.bincount(ref_labels, minlength=k),
        probes=np.bincount(probe_labels, minlength=k),
        genuine=genuine,
        misses=misses,
        false_matches=false_match_triples(
            np.concatenate(matched_refs or [np.zeros(0, np.int64)]),
            np.concatenate(matched_probes or [np.zeros(0, np.int64)]),
        ),
    )
