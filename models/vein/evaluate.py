"""Evaluate the vein matcher on a folder of ``FXXYY.bmp`` captures (XX finger, YY capture).

Every pair of captures is scored once; same-finger pairs are genuine, the
rest impostors. Reports EER, FNMR at FMR 1e-3 (and its threshold), a ROC
plot and a Markdown report.
"""

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.vein.features import VeinParams, extract
from models.vein.match import CH, CW
from models.vein.scoring import score_matrix

NAME = re.compile(r"F(\d+?)(\d{2})$")


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


@dataclass(frozen=True)
class Evaluation:
    rates: Rates
    genuine: np.ndarray
    impostor: np.ndarray
    fingers: int
    images: int
    extract_ms: float
    match_us: float


def evaluate(
    images: Sequence[np.ndarray],
    labels: np.ndarray,
    params: VeinParams | None = None,
    ch: int = CH,
    cw: int = CW,
) -> Evaluation:
    """All-pairs evaluation of ``images`` whose finger labels are ``labels``."""
    params = params or VeinParams()
    start = time.perf_counter()
    templates = [extract(img, params) for img in images]
    extract_ms = (time.perf_counter() - start) * 1000 / len(images)
    start = time.perf_counter()
    scores = score_matrix(templates, ch, cw)
    pairs = len(images) * (len(images) - 1) // 2
    match_us = (time.perf_counter() - start) * 1e6 / pairs
    rows, cols = np.triu_indices(len(images), 1)
    values = scores[rows, cols]
    same = labels[rows] == labels[cols]
    genuine, impostor = values[same], values[~same]
    return Evaluation(
        error_rates(genuine, impostor),
        genuine,
        impostor,
        len(set(labels.tolist())),
        len(images),
        extract_ms,
        match_us,
    )


def plot_roc(result: Evaluation, path: Path) -> None:
    """ROC (FNMR against FMR, log FMR axis) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fmr, fnmr = roc_curve(result.genuine, result.impostor)
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    floor = 1.0 / result.impostor.size
    ax.semilogx(np.maximum(fmr, floor), fnmr * 100, lw=1.8, label="maximum curvature + Miura")
    r = result.rates
    ax.axvline(r.fmr_target, ls=":", c="grey")
    ax.plot([r.eer], [r.eer * 100], "o", c="C3", label=f"EER {r.eer * 100:.2f}%")
    ax.set_xlabel("false match rate")
    ax.set_ylabel("false non-match rate (%)")
    ax.set_title(f"finger vein: {result.fingers} fingers, {result.images} images")
    ax.set_xlim(floor, 1)
    ax.set_ylim(0, max(5.0, float(fnmr[np.searchsorted(-fmr, -1e-4)]) * 100 + 1))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def report(result: Evaluation, dataset: str, params: VeinParams, ch: int, cw: int) -> str:
    """Markdown report of ``result``."""
    r = result.rates
    g, i = result.genuine, result.impostor
    return f"""# Finger-vein matcher evaluation

- Data: `{dataset}`: {result.fingers} fingers, {result.images} images
- Method: finger mask, maximum curvature (sigma {params.sigma}), median binarisation,
  Miura match (search ±{ch} rows, ±{cw} columns), template {params.height}x{params.width}
- Comparisons: {r.genuine} genuine, {r.impostor} impostor (every pair once)

| measure | value |
|---|---|
| EER | {r.eer * 100:.2f}% (threshold {r.eer_threshold:.4f}) |
| FNMR at FMR {r.fmr_target:g} | {r.fnmr_at_fmr * 100:.2f}% (threshold {r.threshold_at_fmr:.4f}) |
| genuine scores | mean {g.mean():.3f}, min {g.min():.3f} |
| impostor scores | mean {i.mean():.3f}, max {i.max():.3f} |
| extraction per image | {result.extract_ms:.1f} ms (this machine) |
| match per comparison | {result.match_us:.0f} µs batched FFT (this machine) |

![ROC](roc.png)

Scores are in [0, 0.5]; a comparison matches when score >= threshold. The
threshold at FMR {r.fmr_target:g} is the one to put in the model manifest. With
{r.impostor} impostor pairs, FMR {r.fmr_target:g} rests on about
{round(r.impostor * r.fmr_target)} impostor scores: a statistically thin
estimate, and one dataset of one sensor is not proof for another sensor.
"""
