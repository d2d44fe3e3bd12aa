"""Evaluate a bundle on a labelled face set (LFW layout) and calibrate its thresholds."""

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.bundle import Manifest, Mode, Threshold, read_manifest, write_manifest
from models.pipeline import FacePipeline
from models.tools import embeddings, lfw
from models.tools.metrics import ErrorCurve, all_pairs_curve, cross_curve, kfold_accuracy

log = logging.getLogger(__name__)


@dataclass
class FoldResult:
    """LFW protocol accuracy of one system."""

    name: str
    accuracies: np.ndarray
    thresholds: np.ndarray
    failures: int


@dataclass
class Evaluation:
    """Everything the report shows."""

    dataset: str
    images: int
    identities: int
    protocol: list[FoldResult]
    live: ErrorCurve
    card: ErrorCurve
    card_refs: int
    live_missed: int
    card_missed: int
    parity: np.ndarray | None
    subgroups: list[dict[str, object]] = field(default_factory=list)
    thresholds: dict[Mode, Threshold] = field(default_factory=dict)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def _protocol(name: str, templates: np.ndarray, pairs: list[lfw.Pair], failures: int) -> FoldResult:
    a = templates[[p.a for p in pairs]]
    b = templates[[p.b for p in pairs]]
    dist = np.linalg.norm(a.astype(np.float64) - b, axis=1)
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    accs, thresholds = kfold_accuracy(dist, same, folds)
    return FoldResult(name, accs, thresholds, failures)


def _subgroups(
    root: Path, faces: lfw.FaceSet, live: np.ndarray, threshold: float
) -> list[dict[str, object]]:
    """Per subgroup: images, genuine pairs and FNMR at ``threshold``, impostor FMR."""
    labels = np.array(faces.identities)
    rows = []
    for group, names in lfw.read_subgroups(root).items():
        members = np.isin(labels, names)
        idx = np.nonzero(members)[0]
        t = live[idx].astype(np.float64)
        d = np.linalg.norm(t[:, None, :] - t[None, :, :], axis=2)
        same = labels[idx][:, None] == labels[idx][None, :]
        upper = np.triu(np.ones_like(same), 1)
        genuine = d[upper & same]
        others = live[~members].astype(np.float64)
        imp = np.sqrt(
            np.clip((t**2).sum(1)[:, None] + (others**2).sum(1)[None] - 2 * t @ others.T, 0, None)
        )
        rows.append(
            {
                "group": group,
                "identities": len(set(labels[idx])),
                "images": len(idx),
                "genuine_pairs": len(genuine),
                "fnmr": float((genuine > threshold).mean()) if len(genuine) else float("nan"),
                "impostor_pairs": int(imp.size),
                "fmr": float((imp <= threshold).mean()),
            }
        )
    return rows


def evaluate(
    root: Path,
    pipe: FacePipeline,
    cache_dir: Path,
    *,
    with_dlib: bool = True,
    live_fmr: float = 1e-4,
    card_fmr: float = 1e-3,
) -> Evaluation:
    """Run every measure of the report on the face set at ``root``."""
    faces = lfw.load(root)
    pairs = lfw.read_pairs(faces)
    key = f"{pipe.manifest.version}-r{embeddings.REVISION}-{len(faces.paths)}"
    ours = embeddings.ours(pipe, faces.paths, cache_dir / f"lfw-ours-{key}.npz")
    live, found = ours["live"], ours["found"]
    protocol = [
        _protocol("lifecert (BlazeFace + mesh + TFLite ResNet)", live, pairs, int((~found).sum()))
    ]
    parity = None
    if with_dlib:
        used = sorted({p.a for p in pairs} | {p.b for p in pairs})
        paths = [faces.paths[i] for i in used]
        net = pipe.manifest.models["embedder"].sha256[:12]  # the baseline needs only the network
        base = embeddings.dlib_pipeline(
            pipe, paths, cache_dir / f"lfw-dlib-{net}-{len(faces.paths)}-{len(used)}.npz"
        )
        full = np.zeros_like(live)
        full[used] = base["dlib"]
        protocol.append(
            _protocol("dlib (HOG + 5-point + ResNet)", full, pairs, int((~base["found"]).sum()))
        )
        parity = _cosine(base["dlib"], base["converted"])
    labels = np.unique(np.array(faces.identities), return_inverse=True)[1]
    valid = np.linalg.norm(live, axis=1) > 0
    live_curve, _ = all_pairs_curve(live, labels, valid)
    # card photo: every image of a person with 2+ images, degraded, against all other images
    counts = np.bincount(labels)
    multi = counts[labels] > 1
    refs = np.nonzero(multi & ours["card_ok"] & valid)[0]
    card_curve = cross_curve(
        live[valid], labels[valid], ours["card"][refs], labels[refs],
        exclude=np.searchsorted(np.nonzero(valid)[0], refs),
    )  # fmt: skip
    t_live, fnmr_live = live_curve.at_fmr(live_fmr)
    t_card, fnmr_card = card_curve.at_fmr(card_fmr)
    source = f"{root.name}: {len(faces.paths)} images, all pairs"
    thresholds: dict[Mode, Threshold] = {
        "live": Threshold(distance=round(t_live, 4), target_fmr=live_fmr,
                          fnmr_at_target=round(fnmr_live, 4),
                          calibrated_on=f"{source} (live vs live)"),
        "card_photo": Threshold(distance=round(t_card, 4), target_fmr=card_fmr,
                                fnmr_at_target=round(fnmr_card, 4),
                                calibrated_on=f"{source} (card photo 102x126 JPEG q20 vs live)"),
    }  # fmt: skip
    return Evaluation(
        dataset=str(root),
        images=len(faces.paths),
        identities=int(labels.max() + 1),
        protocol=protocol,
        live=live_curve,
        card=card_curve,
        card_refs=len(refs),
        live_missed=int((~found).sum()),
        card_missed=int((multi & ~ours["card_ok"]).sum()),
        parity=parity,
        subgroups=_subgroups(root, faces, live, t_live),
        thresholds=thresholds,
    )


def calibrate(
    bundle: Path, signing_key: Path, public_key: Path, thresholds: dict[Mode, Threshold]
) -> Manifest:
    """Write ``thresholds`` into the bundle's manifest and sign it again."""
    manifest = read_manifest(bundle, public_key)
    updated = manifest.model_copy(update={"thresholds": {**manifest.thresholds, **thresholds}})
    write_manifest(bundle, Manifest.model_validate(updated.model_dump()), signing_key)
    return updated
