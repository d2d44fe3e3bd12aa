"""SFace's int8 activation ranges, calibrated once on LFW and kept in the repository.

``lifecert-models calibrate`` (``models.tools.calibrate``) writes
``models/calibration/sface-int8.json``; ``lifecert-models build`` reads it to quantise SFace
(``models.tools.quantize``), so a fresh machine builds the int8 bundle without the face
data. The file names the SHA-256 of the float model it was calibrated on and is refused for
any other.
"""

import hashlib
import json
from pathlib import Path

from models.errors import ModelBuildError

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
