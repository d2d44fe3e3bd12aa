"""Evaluate a bundle on a labelled face set (LFW layout).

The set is split into identity-disjoint parts (``models.tools.lfw.split``). Fitting: the
thresholds at the target FMRs are read off the ``calibration`` part's curves, then measured
on the ``heldout`` part. Fixed: the bundle's own thresholds are measured on one part and
nothing is fitted. Measured rates come with the comparisons behind them and 95% intervals
(``models.tools.rates``).
"""

import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from models.bundle import Manifest, Metric, Mode, Threshold, read_manifest, write_manifest
from models.errors import ModelError
from models.pipeline import FacePipeline
from models.tools import embeddings, lfw
from models.tools.metrics import ErrorCurve, counts_at, cross_curve, kfold_accuracy
from models.tools.rates import Rate

log = logging.getLogger(__name__)

DEFAULT_TARGETS: dict[Mode, float] = {"live": 1e-4, "card_photo": 1e-3}
MODES: dict[Mode, str] = {
    "live": "live vs live",
    "card_photo": "card photo 102x126 JPEG q20 vs live",
}


@dataclass
class FoldResult:
    """LFW protocol accuracy of one system."""

    name: str
    accuracies: np.ndarray
    thresholds: np.ndarray
    failures: int


@dataclass(frozen=True)
class Templates:
    """Every image's templates (probe, kept reference, card-photo reference) and identity."""

    live: np.ndarray
    kept: np.ndarray
    card: np.ndarray
    card_ok: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class Comparisons:
    """One mode's references against probes on one part; labels ``0..K-1`` in the part."""

    probes: np.ndarray
    probe_labels: np.ndarray
    refs: np.ndarray
    ref_labels: np.ndarray
    exclude: np.ndarray
    """each reference's own image among the probes (never compared)"""

    def curve(self) -> ErrorCurve:
        """FMR and FNMR over thresholds."""
        return cross_curve(
            self.probes, self.probe_labels, self.refs, self.ref_labels, exclude=self.exclude
        )

    def measure(self, threshold: Threshold) -> "Measured":
        """FMR and FNMR at ``threshold``, with the comparisons behind them."""
        counts = counts_at(
            threshold.distance, self.probes, self.probe_labels, self.refs, self.ref_labels,
            exclude=self.exclude,
        )  # fmt: skip
        fmr, fnmr = counts.rates()
        return Measured(threshold, fmr, fnmr)


@dataclass(frozen=True)
class Measured:
    """One threshold measured on one part."""

    threshold: Threshold
    fmr: Rate
    fnmr: Rate


@dataclass(frozen=True)
class PartResult:
    """Curves of a part and the thresholds measured on it."""

    part: lfw.Part
    images: int
    identities: int
    live: ErrorCurve
    card: ErrorCurve
    card_refs: int
    card_missed: int
    measured: dict[Mode, Measured]


@dataclass
class Evaluation:
    """Everything the report shows."""

    dataset: str
    images: int
    identities: int
    folds: int
    protocol: list[FoldResult]
    live_missed: int
    parity: np.ndarray | None
    reported: PartResult
    """the part the thresholds are measured on"""
    fitted: PartResult | None
    """the part the thresholds were fitted on; None: the bundle's own thresholds"""
    thresholds: dict[Mode, Threshold]
    parts: list[tuple[lfw.Part, int]]
    """the calibration and held-out parts with their identity counts"""
    subgroups: list[dict[str, object]] = field(default_factory=list)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(norm > 0, x / np.maximum(norm, 1e-12), x)


def _protocol(
    name: str,
    references: np.ndarray,
    probes: np.ndarray,
    pairs: list[lfw.Pair],
    failures: int,
) -> FoldResult:
    """The first image of each pair as the reference, the second as the live probe."""
    a = references[[p.a for p in pairs]]
    b = probes[[p.b for p in pairs]]
    dist = np.linalg.norm(a.astype(np.float64) - b, axis=1)
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    accs, thresholds = kfold_accuracy(dist, same, folds)
    return FoldResult(name, accs, thresholds, failures)


def _distances(refs: np.ndarray, probes: np.ndarray) -> np.ndarray:
    r, p = refs.astype(np.float64), probes.astype(np.float64)
    return np.sqrt(np.clip((r**2).sum(1)[:, None] + (p**2).sum(1)[None] - 2 * r @ p.T, 0, None))


def comparisons(t: Templates, index: np.ndarray) -> tuple[dict[Mode, Comparisons], int]:
    """Both modes' comparisons among the images ``index``, and how many card photos of
    people with 2+ images yielded no face.

    live: every image's kept reference against every other image's probe (ordered pairs);
    card photo: every image of a person with 2+ images, degraded, against all other images.
    """
    part = np.zeros(len(t.labels), bool)
    part[index] = True
    valid = part & (np.linalg.norm(t.live, axis=1) > 0)
    labels = np.unique(t.labels[valid], return_inverse=True)[1]
    live = Comparisons(t.live[valid], labels, t.kept[valid], labels, np.arange(valid.sum()))
    multi = part & (np.bincount(t.labels)[t.labels] > 1)
    refs = np.flatnonzero(multi & t.card_ok & valid)
    at = np.searchsorted(np.flatnonzero(valid), refs)
    card = Comparisons(t.live[valid], labels, t.card[refs], labels[at], at)
    return {"live": live, "card_photo": card}, int((multi & ~t.card_ok).sum())


def _part_result(part: lfw.Part, t: Templates) -> tuple[PartResult, dict[Mode, Comparisons]]:
    """The part's curves (nothing measured yet) and its comparisons."""
    if not len(part.index):
        raise ModelError(f"the {part.name} part ({part.description}) has no images")
    modes, card_missed = comparisons(t, part.index)
    curves = {mode: c.curve() for mode, c in modes.items()}
    result = PartResult(
        part, len(part.index), len(set(t.labels[part.index].tolist())), curves["live"],
        curves["card_photo"], len(modes["card_photo"].refs), card_missed, {},
    )  # fmt: skip
    return result, modes


def _measured(
    result: PartResult, modes: dict[Mode, Comparisons], thresholds: dict[Mode, Threshold]
) -> PartResult:
    return replace(
        result, measured={mode: modes[mode].measure(th) for mode, th in thresholds.items()}
    )


def _subgroups(
    root: Path,
    faces: lfw.FaceSet,
    t: Templates,
    index: np.ndarray,
    threshold: float,
) -> list[dict[str, object]]:
    """Per subgroup among the images ``index`` (members' references against every other
    image's probe): images, genuine pairs and FNMR at ``threshold``, impostor FMR."""
    labels = np.array(faces.identities)
    part = np.zeros(len(labels), bool)
    part[index] = True
    rows = []
    for group, names in lfw.read_subgroups(root).items():
        members = part & np.isin(labels, names)
        idx = np.nonzero(members)[0]
        if not len(idx):
            continue
        d = _distances(t.kept[idx], t.live[idx])
        same = labels[idx][:, None] == labels[idx][None, :]
        genuine = d[same & ~np.eye(len(idx), dtype=bool)]
        imp = _distances(t.kept[idx], t.live[part & ~members])
        rows.append(
            {
                "group": group,
                "identities": len(set(labels[idx])),
                "images": len(idx),
                "genuine_pairs": len(genuine),
                "fnmr": float((genuine > threshold).mean()) if len(genuine) else float("nan"),
                "impostor_pairs": int(imp.size),
                "fmr": float((imp <= threshold).mean()) if imp.size else float("nan"),
            }
        )
    return rows


def _fit(
    root: Path,
    calibration: PartResult,
    heldout: lfw.Part,
    metric: Metric,
    targets: dict[Mode, float],
) -> dict[Mode, Threshold]:
    """Thresholds at the ``targets`` FMRs on the calibration part's curves."""
    curves = {"live": calibration.live, "card_photo": calibration.card}
    fitted: dict[Mode, Threshold] = {}
    for mode, target in targets.items():
        distance, _ = curves[mode].at_fmr(target)
        fitted[mode] = Threshold(
            metric=metric,
            distance=math.floor(distance * 1e4 + 1e-9) / 1e4,  # never admits another pair
            target_fmr=target,
            calibrated_on=f"{root.name} {calibration.part.description} "
            f"({calibration.images} images, {calibration.identities} identities), all pairs "
            f"({MODES[mode]}); FNMR measured on {heldout.description}",
        )
    return fitted


def evaluate(
    root: Path,
    pipe: FacePipeline,
    cache_dir: Path,
    *,
    with_dlib: bool = True,
    targets: dict[Mode, float] | None = None,
    fixed: lfw.PartName | None = None,
) -> Evaluation:
    """Run every measure of the report on the face set at ``root``.

    ``fixed`` names the part the bundle's own thresholds are measured on (nothing is
    fitted); otherwise thresholds at the ``targets`` FMRs (default :data:`DEFAULT_TARGETS`)
    are fitted on the calibration part and measured on the held-out part.
    """
    faces = lfw.load(root)
    pairs = lfw.read_pairs(faces)
    parts = lfw.split(faces, pairs)
    ours = embeddings.ours(pipe, root, faces.paths, cache_dir)
    embedder = pipe.manifest.models["embedder"]
    metric: Metric = "euclidean_unit" if embedder.options.get("unit_length") else "euclidean"
    scale = _unit if metric == "euclidean_unit" else np.asarray
    labels = np.unique(np.array(faces.identities), return_inverse=True)[1]
    t = Templates(
        scale(ours["live"]), scale(ours["reference"]), scale(ours["card"]), ours["card_ok"], labels
    )
    found = ours["found"]
    keypoints = pipe.manifest.models.get("keypoints")
    steps = " + ".join(
        ["BlazeFace", "mesh", *([keypoints.type] if keypoints else []), embedder.file]
    )
    protocol = [_protocol(f"lifecert ({steps})", t.kept, t.live, pairs, int((~found).sum()))]
    parity = None
    if with_dlib:
        used = sorted({p.a for p in pairs} | {p.b for p in pairs})
        base = embeddings.dlib_pipeline(pipe, root, [faces.paths[i] for i in used], cache_dir)
        full = np.zeros_like(t.live)
        full[used] = base["dlib"]
        protocol.append(
            _protocol(
                "dlib (HOG + 5-point + ResNet)", full, full, pairs, int((~base["found"]).sum())
            )
        )
        parity = _cosine(base["dlib"], base["converted"]) if "converted" in base else None
    fitted = None
    if fixed is not None:
        thresholds = {mode: pipe.manifest.face_threshold(mode) for mode in MODES}
        result, modes = _part_result(parts[fixed], t)
        result = _measured(result, modes, thresholds)
    else:
        calibration, calibration_modes = _part_result(parts["calibration"], t)
        result, modes = _part_result(parts["heldout"], t)
        thresholds = _fit(root, calibration, parts["heldout"], metric, targets or DEFAULT_TARGETS)
        fitted = _measured(calibration, calibration_modes, thresholds)
        result = _measured(result, modes, thresholds)
        thresholds = {
            mode: th.model_copy(update={"fnmr_at_target": _rounded(result.measured[mode].fnmr)})
            for mode, th in thresholds.items()
        }
    return Evaluation(
        dataset=str(root),
        images=len(faces.paths),
        identities=int(labels.max() + 1),
        folds=max(p.fold for p in pairs) + 1,
        protocol=protocol,
        live_missed=int((~found).sum()),
        parity=parity,
        reported=result,
        fitted=fitted,
        thresholds=thresholds,
        parts=[
            (parts[name], len(set(labels[parts[name].index].tolist())))
            for name in ("calibration", "heldout")
        ],
        subgroups=_subgroups(root, faces, t, result.part.index, thresholds["live"].distance),
    )


def _rounded(rate: Rate) -> float | None:
    return round(rate.value, 4) if rate.trials else None


def calibrate(
    bundle: Path, signing_key: Path, public_key: Path, thresholds: dict[Mode, Threshold]
) -> Manifest:
    """Write ``thresholds`` into the bundle's manifest and sign it again."""
    manifest = read_manifest(bundle, public_key)
    updated = Manifest.model_validate(
        {**manifest.model_dump(), "thresholds": {**manifest.thresholds, **thresholds}}
    )
    write_manifest(bundle, updated, signing_key)
    return updated
