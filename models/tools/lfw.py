"""A labelled face set in LFW's layout: ``images/<Name>/<Name>_<NNNN>.jpg`` and ``pairs.txt``."""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from models.errors import ModelError


@dataclass(frozen=True)
class Pair:
    """Two image indices, same person or not, and the fold."""

    a: int
    b: int
    same: bool
    fold: int


@dataclass(frozen=True)
class FaceSet:
    """Every image with its identity."""

    root: Path
    paths: list[Path]
    identities: list[str]

    def index(self) -> dict[tuple[str, int], int]:
        """(name, number) -> image index."""
        return {
            (n, int(p.stem.rsplit("_", 1)[1])): i
            for i, (n, p) in enumerate(zip(self.identities, self.paths, strict=True))
        }


def load(root: Path) -> FaceSet:
    """All images under ``root/images``, sorted."""
    paths = sorted((root / "images").glob("*/*.jpg"))
    if not paths:
        raise ModelError(f"{root}: no images/<Name>/<Name>_NNNN.jpg found (LFW layout expected)")
    return FaceSet(root, paths, [p.parent.name for p in paths])


def read_pairs(faces: FaceSet, name: str = "pairs.txt") -> list[Pair]:
    """The protocol pairs: header ``folds n``, then per fold n same and n different pairs."""
    lines = (faces.root / name).read_text().split("\n")
    folds, per = (int(v) for v in lines[0].split())
    index = faces.index()
    pairs: list[Pair] = []
    rows = [line.split() for line in lines[1:] if line.strip()]
    if len(rows) != folds * 2 * per:
        raise ModelError(f"{name}: {len(rows)} pairs, header promises {folds * 2 * per}")
    for k, row in enumerate(rows):
        fold = k // (2 * per)
        try:
            if len(row) == 3:
                pairs.append(
                    Pair(index[row[0], int(row[1])], index[row[0], int(row[2])], True, fold)
                )
            else:
                pairs.append(
                    Pair(index[row[0], int(row[1])], index[row[2], int(row[3])], False, fold)
                )
        except KeyError as exc:
            raise ModelError(f"{name}: pair {row} names a missing image {exc}") from None
    return pairs


def read_subgroups(root: Path) -> dict[str, list[str]]:
    """group -> identities from ``subgroups.tsv`` (comment lines and header skipped)."""
    path = root / "subgroups.tsv"
    groups: dict[str, list[str]] = {}
    if not path.is_file():
        return groups
    for line in path.read_text().splitlines():
        cols = line.split("\t")
        if line.startswith("#") or len(cols) < 2 or cols[0] == "group":
            continue
        groups.setdefault(cols[0], []).append(cols[1])
    return groups


PartName = Literal["calibration", "heldout", "all"]


@dataclass(frozen=True)
class Part:
    """Images of a set of identities, disjoint from the other part's."""

    name: PartName
    description: str
    index: np.ndarray
    """image indices, ascending"""


def split(faces: FaceSet, pairs: list[Pair]) -> dict[PartName, Part]:
    """Identity-disjoint parts from pairs.txt, whose folds are identity-disjoint.

    ``calibration`` (thresholds are fitted here): identities named in the first ceil(F/2)
    of the F folds and identities no pair names (the int8 ranges come from these too);
    ``heldout`` (figures are reported here): identities named in the last floor(F/2)
    folds; ``all``: every image.
    """
    folds = max(p.fold for p in pairs) + 1
    first = (folds + 1) // 2
    late = {faces.identities[i] for p in pairs if p.fold >= first for i in (p.a, p.b)}
    early = {faces.identities[i] for p in pairs if p.fold < first for i in (p.a, p.b)}
    if late & early:
        raise ModelError(
            f"pairs.txt names {sorted(late & early)[:3]} in folds on both sides of fold "
            f"{first}: its folds must be identity-disjoint"
        )
    held = np.array([name in late for name in faces.identities])
    return {
        "calibration": Part(
            "calibration",
            f"pairs.txt {_folds(1, first)} and identities no pair names",
            np.flatnonzero(~held),
        ),
        "heldout": Part("heldout", f"pairs.txt {_folds(first + 1, folds)}", np.flatnonzero(held)),
        "all": Part("all", "every image", np.arange(len(faces.paths))),
    }


def _folds(first: int, last: int) -> str:
    return f"folds {first}-{last}" if last > first else f"fold {first}"
