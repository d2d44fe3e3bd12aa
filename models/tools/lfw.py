"""A labelled face set in LFW's layout: ``images/<Name>/<Name>_<NNNN>.jpg`` and ``pairs.txt``."""

from dataclasses import dataclass
from pathlib import Path

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
