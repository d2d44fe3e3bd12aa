"""Evaluate the vein matcher on a folder of ``FXXYY.bmp`` captures (XX finger, YY capture).

The fingers are split by number into two disjoint parts (:func:`split`): the threshold at
the target FMR is fitted on the ``calibration`` part and measured on the ``heldout`` part,
or (fixed) the signed bundle's threshold is measured on one part. Within a part every pair
of captures is scored once; same-finger pairs are genuine, the rest impostors.
"""

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from models.tools.rates import Rate, SubjectCounts, false_match_triples
from models.vein.features import VeinParams, extract
from models.vein.match import CH, CW
from models.vein.scoring import score_matrix

NAME = re.compile(r"F(\d+?)(\d{2})$")
PartName = Literal["calibration", "heldout", "all"]


@dataclass(frozen=True)
class Rates:
    """Error rates of genuine and impostor score samples."""

    eer: float
    eer_threshold: float
    fnmr_at_fmr: float
    fmr_target: float
    threshold_at_fmr: float
    genuine: int
    impostor: int


def error_rates(genuine: np.ndarray, impostor: np.ndarray, fmr_target: float = 1e-3) -> Rates:
    """EER and FNMR at ``fmr_target``; a comparison matches when its score >= threshold."""
    g = np.sort(genuine)
    i = np.sort(impostor)
    thresholds = np.unique(np.concatenate([g, i, [np.inf]]))
    fnmr = np.searchsorted(g, thresholds, side="left") / g.size
    fmr = 1.0 - np.searchsorted(i, thresholds, side="left") / i.size
    k = int(np.argmin(np.abs(fnmr - fmr)))
    # smallest threshold whose FMR does not exceed the target
    ok = np.flatnonzero(fmr <= fmr_target)
    t = int(ok[0])
    return Rates(
        eer=float((fnmr[k] + fmr[k]) / 2),
        eer_threshold=float(thresholds[k]),
        fnmr_at_fmr=float(fnmr[t]),
        fmr_target=fmr_target,
        threshold_at_fmr=float(thresholds[t]),
        genuine=int(g.size),
        impostor=int(i.size),
    )


def roc_curve(genuine: np.ndarray, impostor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FMR, FNMR) over all thresholds."""
    g, i = np.sort(genuine), np.sort(impostor)
    thresholds = np.unique(np.concatenate([g, i, [np.inf]]))
    fnmr = np.searchsorted(g, thresholds, side="left") / g.size
    fmr = 1.0 - np.searchsorted(i, thresholds, side="left") / i.size
    return fmr, fnmr


def load_images(folder: Path) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """Grey images, finger labels and file names of ``folder/F*.bmp``."""
    from PIL import Image

    files = sorted(p for p in folder.glob("F*.bmp") if NAME.match(p.stem[:5]))
    if not files:
        raise FileNotFoundError(f"no FXXYY.bmp images in {folder}")
    images, labels = [], []
    for path in files:
        with Image.open(path) as img:
            images.append(np.asarray(img.convert("L")))
        labels.append(int(path.stem[1:3]))
    return images, np.array(labels), [p.name for p in files]


def split(labels: np.ndarray) -> dict[PartName, tuple[str, np.ndarray]]:
    """(description, image indices) of each part: ``calibration`` the first half of the
    fingers by number (rounded up), ``heldout`` the others, ``all`` every image."""
    fingers = sorted(set(labels.tolist()))
    last = fingers[(len(fingers) + 1) // 2 - 1]
    early = labels <= last
    rest = [f for f in fingers if f > last]
    return {
        "calibration": (f"fingers {fingers[0]:02d}-{last:02d}", np.flatnonzero(early)),
        "heldout": (
            f"fingers {rest[0]:02d}-{rest[-1]:02d}" if rest else "no fingers",
            np.flatnonzero(~early),
        ),
        "all": ("every finger", np.arange(len(labels))),
    }


@dataclass(frozen=True)
class Scores:
    """Every pair of one part's captures scored once."""

    genuine: np.ndarray
    impostor: np.ndarray
    pairs: tuple[np.ndarray, np.ndarray]
    """(finger of the first capture, of the second) of each impostor pair"""
    labels: np.ndarray
    """finger of each image, ``0..K-1``"""
    genuine_fingers: np.ndarray
    """finger of each genuine pair"""
    extract_ms: float
    match_us: float

    @property
    def fingers(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    def measure(self, threshold: float) -> tuple[Rate, Rate]:
        """(FMR, FNMR) at ``threshold`` (match when score >= it) with both 95% intervals."""
        k = self.fingers
        n = np.bincount(self.labels, minlength=k)
        matched = self.impostor >= threshold
        counts = SubjectCounts(
            refs=n,
            probes=n,
            genuine=np.bincount(self.genuine_fingers, minlength=k),
            misses=np.bincount(self.genuine_fingers[self.genuine < threshold], minlength=k),
            false_matches=false_match_triples(self.pairs[0][matched], self.pairs[1][matched]),
            unordered=True,
        )
        return counts.rates()


def score_part(
    images: Sequence[np.ndarray],
    labels: np.ndarray,
    params: VeinParams | None = None,
    ch: int = CH,
    cw: int = CW,
) -> Scores:
    """All-pairs scores of ``images`` whose finger labels are ``labels``."""
    params = params or VeinParams()
    start = time.perf_counter()
    templates = [extract(img, params) for img in images]
    extract_ms = (time.perf_counter() - start) * 1000 / len(images)
    start = time.perf_counter()
    scores = score_matrix(templates, ch, cw)
    match_us = (time.perf_counter() - start) * 1e6 / max(len(images) * (len(images) - 1) // 2, 1)
    finger = np.unique(labels, return_inverse=True)[1]
    rows, cols = np.triu_indices(len(images), 1)
    values = scores[rows, cols]
    same = finger[rows] == finger[cols]
    return Scores(
        genuine=values[same],
        impostor=values[~same],
        pairs=(finger[rows][~same], finger[cols][~same]),
        labels=finger,
        genuine_fingers=finger[rows][same],
        extract_ms=extract_ms,
        match_us=match_us,
    )


def fit(scores: Scores, fmr_target: float) -> float:
    """The smallest threshold whose FMR on ``scores`` is at most ``fmr_target``, rounded up
    to 4 decimals (rounding never admits another impostor)."""
    t = error_rates(scores.genuine, scores.impostor, fmr_target).threshold_at_fmr
    return math.ceil(t * 1e4 - 1e-9) / 1e4


@dataclass(frozen=True)
class Measured:
    """A part scored and the threshold measured on it."""

    name: PartName
    description: str
    scores: Scores
    fmr: Rate
    fnmr: Rate


@dataclass(frozen=True)
class Evaluation:
    """The reported part with its curve's rates, the threshold, and where it was fitted."""

    threshold: float
    reported: Measured
    rates: Rates
    fitted_on: Measured | None
    """the calibration part (in-sample figures); None: the bundle's threshold"""


def evaluate(
    images: Sequence[np.ndarray],
    labels: np.ndarray,
    params: VeinParams | None = None,
    ch: int = CH,
    cw: int = CW,
    *,
    fmr_target: float = 1e-3,
    fixed: tuple[PartName, float] | None = None,
) -> Evaluation:
    """Fit the threshold at ``fmr_target`` on the calibration part and measure it on the
    held-out part; or, with ``fixed`` = (part, threshold), measure that threshold there."""
    parts = split(labels)
    name: PartName = fixed[0] if fixed else "heldout"
    for part in (name, *(() if fixed else ("calibration",))):
        description, index = parts[part]
        if len(set(labels[index].tolist())) < 2:
            raise ValueError(f"the {part} part ({description}) needs two fingers or more")

    def scored(part: PartName) -> Scores:
        index = parts[part][1]
        return score_part([images[i] for i in index], labels[index], params, ch, cw)

    def measured(part: PartName, scores: Scores, threshold: float) -> Measured:
        return Measured(part, parts[part][0], scores, *scores.measure(threshold))

    fitted_on = None
    if fixed is None:
        calibration = scored("calibration")
        threshold = fit(calibration, fmr_target)
        fitted_on = measured("calibration", calibration, threshold)
    else:
        threshold = fixed[1]
    scores = scored(name)
    return Evaluation(
        threshold,
        measured(name, scores, threshold),
        error_rates(scores.genuine, scores.impostor, fmr_target),
        fitted_on,
    )


def plot_roc(result: Evaluation, path: Path) -> None:
    """ROC (FNMR against FMR, log FMR axis) of the measured part as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = result.reported
    s = m.scores
    fmr, fnmr = roc_curve(s.genuine, s.impostor)
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    floor = 1.0 / s.impostor.size
    ax.semilogx(np.maximum(fmr, floor), fnmr * 100, lw=1.8, label="maximum curvature + Miura")
    r = result.rates
    ax.axvline(r.fmr_target, ls=":", c="grey")
    ax.plot([r.eer], [r.eer * 100], "o", c="C3", label=f"EER {r.eer * 100:.2f}%")
    ax.plot(
        [max(m.fmr.value, floor)], [m.fnmr.value * 100], "s", c="C2",
        label=f"threshold {result.threshold:.4f}",
    )  # fmt: skip
    ax.set_xlabel("false match rate")
    ax.set_ylabel("false non-match rate (%)")
    ax.set_title(f"finger vein, {m.description}: {len(s.labels)} images")
    ax.set_xlim(floor, 1)
    ax.set_ylim(0, max(5.0, float(fnmr[np.searchsorted(-fmr, -1e-4)]) * 100 + 1))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _rate(r: Rate) -> str:
    def span(interval: tuple[float, float] | None) -> str:
        if interval is None:
            return "none (no errors to resample)"
        return f"[{100 * interval[0]:.3f}, {100 * interval[1]:.3f}]%"

    return (
        f"{100 * r.value:.3f}% ({r.errors:,}/{r.trials:,}); exact {span(r.exact)}, "
        f"bootstrap {span(r.bootstrap)}"
    )


def _rows(m: Measured, note: str = "") -> str:
    return (
        f"| {m.name} ({m.description}){note} | {len(m.scores.labels)} | {_rate(m.fmr)} | "
        f"{_rate(m.fnmr)} |"
    )


def report(
    result: Evaluation, dataset: str, params: VeinParams, ch: int, cw: int, command: str
) -> str:
    """Markdown report of ``result``."""
    r, m = result.rates, result.reported
    g, i = m.scores.genuine, m.scores.impostor
    if result.fitted_on is None:
        origin = "the signed bundle's `vein` threshold (not re-fitted)"
        rows = _rows(m)
    else:
        origin = (
            f"fitted at FMR {r.fmr_target:g} on the calibration part "
            f"({result.fitted_on.description}), rounded up to 4 decimals"
        )
        rows = f"{_rows(m)}\n{_rows(result.fitted_on, ', in-sample')}"
    return f"""# Finger-vein matcher evaluation

- Data: `{dataset}`; measured on the {m.name} part ({m.description}): \
{m.scores.fingers} fingers, {len(m.scores.labels)} images
- Method: finger mask, maximum curvature (sigma {params.sigma}), median binarisation,
  Miura match (search ±{ch} rows, ±{cw} columns), template {params.height}x{params.width}
- Comparisons: {r.genuine:,} genuine, {r.impostor:,} impostor (every pair of the part once)
- Produced by: `{command}`

## At the threshold: score >= {result.threshold:.4f}, {origin}

| part | images | FMR (errors/comparisons; 95% intervals) | FNMR |
|---|---|---|---|
{rows}

*exact* is Clopper-Pearson, which treats every comparison as independent; they are not
(each capture meets every other), so it is too narrow. *bootstrap* resamples fingers with
replacement (2,000 replicates): quote this one when there are errors to resample; with
none, only the exact upper bound says anything.

## The {m.name} part's own curve

| measure | value |
|---|---|
| EER | {r.eer * 100:.2f}% (threshold {r.eer_threshold:.4f}) |
| FNMR at FMR {r.fmr_target:g}, threshold read off this part | {r.fnmr_at_fmr * 100:.2f}% \
(threshold {r.threshold_at_fmr:.4f}) |
| genuine scores | mean {g.mean():.3f}, min {g.min():.3f} |
| impostor scores | mean {i.mean():.3f}, max {i.max():.3f} |
| extraction per image | {m.scores.extract_ms:.1f} ms (this machine) |
| match per comparison | {m.scores.match_us:.0f} µs batched FFT (this machine) |

![ROC](roc.png)

Scores are in [0, 0.5]; a comparison matches when score >= threshold. With
{r.impostor:,} impostor pairs, FMR {r.fmr_target:g} rests on about
{round(r.impostor * r.fmr_target)} impostor scores: a statistically thin estimate. All
captures of a finger probably come from one session, and one dataset of one sensor is
not proof for another sensor.
"""
