"""The evaluation's identity-disjoint parts and the template cache's content key."""

import os
from pathlib import Path

import numpy as np
import pytest

from models.errors import ModelError
from models.tools import embeddings, lfw
from models.vein.evaluate import split as vein_split


def face_set(root: Path, people: dict[str, int]) -> lfw.FaceSet:
    paths, names = [], []
    for name, count in people.items():
        for i in range(1, count + 1):
            paths.append(root / "images" / name / f"{name}_{i:04d}.jpg")
            names.append(name)
    return lfw.FaceSet(root, paths, names)


def test_parts_follow_the_folds_and_keep_people_apart(tmp_path: Path) -> None:
    people = {"A": 3, "B": 2, "C": 2, "D": 1, "E": 4, "F": 1, "G": 2}
    faces = face_set(tmp_path, people)
    at = faces.index()
    pairs = [  # 3 folds: A, B | C, D | E, F; G in no pair
        lfw.Pair(at["A", 1], at["A", 2], True, 0),
        lfw.Pair(at["A", 3], at["B", 1], False, 0),
        lfw.Pair(at["C", 1], at["D", 1], False, 1),
        lfw.Pair(at["E", 1], at["F", 1], False, 2),
    ]
    parts = lfw.split(faces, pairs)
    names = {k: {faces.identities[i] for i in p.index} for k, p in parts.items()}
    assert names["calibration"] == {"A", "B", "C", "D", "G"}  # folds 1-2 and the unpaired
    assert names["heldout"] == {"E", "F"}
    assert parts["heldout"].description == "pairs.txt fold 3"
    assert parts["calibration"].description.startswith("pairs.txt folds 1-2")
    assert len(parts["all"].index) == sum(people.values())
    assert not set(parts["calibration"].index) & set(parts["heldout"].index)
    leaky = [*pairs, lfw.Pair(at["E", 2], at["A", 1], False, 0)]  # E in folds 1 and 3
    with pytest.raises(ModelError, match="identity-disjoint"):
        lfw.split(faces, leaky)


def test_vein_parts_split_the_fingers_by_number() -> None:
    labels = np.repeat([1, 2, 3, 5, 8], 3)
    parts = vein_split(labels)
    assert parts["calibration"][0] == "fingers 01-03"
    assert set(labels[parts["calibration"][1]]) == {1, 2, 3}
    assert parts["heldout"][0] == "fingers 05-08" and set(labels[parts["heldout"][1]]) == {5, 8}


def test_the_cache_key_follows_the_images_content_not_their_number(tmp_path: Path) -> None:
    root = tmp_path / "set"
    paths = []
    for name in ("a", "b", "c"):
        path = root / "images" / name / f"{name}_0001.jpg"
        path.parent.mkdir(parents=True)
        path.write_bytes(name.encode() * 100)
        paths.append(path)
    key = embeddings.content_key(root, paths, "bundle 1")
    assert key == embeddings.content_key(root, paths, "bundle 1")
    assert key != embeddings.content_key(root, paths, "bundle 2")  # other models
    assert key != embeddings.content_key(root, paths[::-1], "bundle 1")  # other order
    stat = paths[1].stat()
    paths[1].write_bytes(b"B" * 100)  # same size, same times, other content
    os.utime(paths[1], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert key != embeddings.content_key(root, paths, "bundle 1")
    paths[1].write_bytes(b"b" * 100)
    copy = tmp_path / "copy"  # the same images elsewhere: the same key
    copy_paths = []
    for path in paths:
        target = copy / path.relative_to(root)
        target.parent.mkdir(parents=True)
        target.write_bytes(path.read_bytes())
        copy_paths.append(target)
    assert embeddings.content_key(copy, copy_paths, "bundle 1") == key
    renamed = [*paths[:2], paths[2].with_name("c_0002.jpg")]
    paths[2].rename(renamed[2])
    assert embeddings.content_key(root, renamed, "bundle 1") != key


def test_a_cache_file_of_another_image_list_is_not_used(tmp_path: Path) -> None:
    calls = []

    def compute() -> dict[str, np.ndarray]:
        calls.append(1)
        return {"live": np.full((2, 3), len(calls), np.float32)}

    path = tmp_path / "ours-key.npz"
    first = embeddings._cached(path, ["a.jpg", "b.jpg"], compute)
    again = embeddings._cached(path, ["a.jpg", "b.jpg"], compute)
    assert len(calls) == 1 and np.array_equal(first["live"], again["live"])
    assert set(again) == {"live"}
    other = embeddings._cached(path, ["a.jpg", "c.jpg"], compute)
    assert len(calls) == 2 and other["live"][0, 0] == 2
