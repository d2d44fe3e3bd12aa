"""Evaluate a bundle on a labelled face set (LFW layout) and calibrate its thresholds."""

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.bundle import Manifest, Metric, Mode, Threshold, read_manifest, write_manifest
from models.pipeline import FacePipeline
from models.tools import embeddings, lfw
from models.tools.metrics import ErrorCurve, cross_curve, kfold_accuracy

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


def _subgroups(
    root: Path, faces: lfw.FaceSet, refs: np.ndarray, probes: np.ndarray, threshold: float
) -> list[dict[str, object]]:
    """Per subgroup (members' references against every other image's probe): images,
    genuine pairs and FNMR at ``threshold``, impostor FMR."""
    labels = np.array(faces.identities)
    rows = []
    for group, names in lfw.read_subgroups(root).items():
        members = np.isin(labels, names)
        idx = np.nonzero(members)[0]
        d = _distances(refs[idx], probes[idx])
        same = labels[idx][:, None] == labels[idx][None, :]
        genuine = d[same & ~np.eye(len(idx), dtype=bool)]
        imp = _distances(refs[idx], probes[~members])
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
    live, kept, found = ours["live"], ours["reference"], ours["found"]
    embedder = pipe.manifest.models["embedder"]
    keypoints = pipe.manifest.models.get("keypoints")
    steps = " + ".join(
        ["BlazeFace", "mesh", *([keypoints.type] if keypoints else []), embedder.file]
    )
    protocol = [_protocol(f"lifecert ({steps})", kept, live, pairs, int((~found).sum()))]
    parity = None
    if with_dlib:
        used = sorted({p.a for p in pairs} | {p.b for p in pairs})
        paths = [faces.paths[i] for i in used]
        parity_of = "" if embedder.type != "dlib_resnet_v1" else f"-{embedder.sha256[:12]}"
        name = f"lfw-dlib-central{parity_of}-{len(faces.paths)}-{len(used)}.npz"
        base = embeddings.dlib_pipeline(pipe, paths, cache_dir / name)
        full = np.zeros_like(live)
        full[used] = base["dlib"]
        protocol.append(
            _protocol(
                "dlib (HOG + 5-point + ResNet)", full, full, pairs, int((~base["found"]).sum())
            )
        )
        parity = _cosine(base["dlib"], base["converted"]) if "converted" in base else None
    labels = np.unique(np.array(faces.identities), return_inverse=True)[1]
    valid = np.linalg.norm(live, axis=1) > 0
    # live: every image's reference against every other image's probe (ordered pairs)
    live_curve = cross_curve(
        live[valid], labels[valid], kept[valid], labels[valid], exclude=np.arange(valid.sum())
    )
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
    metric: Metric = "euclidean_unit" if embedder.options.get("unit_length") else "euclidean"
    thresholds: dict[Mode, Threshold] = {
        "live": Threshold(metric=metric, distance=round(t_live, 4), target_fmr=live_fmr,
                          fnmr_at_target=round(fnmr_live, 4),
                          calibrated_on=f"{source} (live vs live)"),
        "card_photo": Threshold(metric=metric, distance=round(t_card, 4), target_fmr=card_fmr,
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
        subgroups=_subgroups(root, faces, kept, live, t_live),
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
