"""Calibrated thresholds kept in the repository (``models/thresholds.toml``).

``lifecert-models evaluate`` writes the face thresholds (``live``, ``card_photo``) for one
bundle version (a hash of every model and its options); ``python -m models.vein evaluate``
writes the ``vein`` threshold for one matcher (its ``scorer``). ``lifecert-models build``
signs into the manifest the face thresholds of its bundle version and every score
threshold whose ``scorer`` is the one the bundle uses, so a fresh machine builds a
calibrated bundle without the evaluation data.
"""

import logging
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

import tomli_w

from models.bundle import Kind, Mode, ScoreKind, ScoreThreshold, Threshold

log = logging.getLogger(__name__)

DEFAULT_PATH = Path(__file__).with_name("thresholds.toml")
HEADER = (
    "# Face thresholds (live, card_photo) for bundle_version: written by `lifecert-models "
    "evaluate`;\n# vein for its scorer: written by `python -m models.vein evaluate`. Read by "
    "`lifecert-models build`.\n"
)


def _read(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text()) if path.is_file() else {}


def save(
    path: Path,
    *,
    face: Mapping[Mode, Threshold] | None = None,
    bundle_version: str | None = None,
    scores: Mapping[ScoreKind, ScoreThreshold] | None = None,
) -> None:
    """Write ``face`` thresholds (calibrated for ``bundle_version``, the version of the face
    models) and ``scores`` thresholds into the file, keeping the sections they do not
    replace; face thresholds for another version drop those of the old one."""
    doc = _read(path)
    if face:
        if bundle_version is None:
            raise ValueError("face thresholds need the bundle version they were calibrated for")
        if doc.get("bundle_version") != bundle_version:
            for mode in get_args(Mode):
                doc.pop(mode, None)
        doc["bundle_version"] = bundle_version
    for kind, t in [*(face or {}).items(), *(scores or {}).items()]:
        doc[kind] = t.model_dump(exclude_none=True)
    order = ["bundle_version", *get_args(Kind)]
    path.write_text(HEADER + tomli_w.dumps({k: doc[k] for k in order if k in doc}))


def load(
    path: Path, bundle_version: str, scorers: Mapping[ScoreKind, str] | None = None
) -> dict[Kind, Threshold | ScoreThreshold]:
    """The face thresholds of this bundle version and the score thresholds whose scorer is
    the one given in ``scorers``; kinds calibrated for something else are left out."""
    doc = _read(path)
    found: dict[Kind, Threshold | ScoreThreshold] = {}
    if doc.get("bundle_version") == bundle_version:
        found.update(
            {mode: Threshold.model_validate(doc[mode]) for mode in get_args(Mode) if mode in doc}
        )
    elif any(mode in doc for mode in get_args(Mode)):
        log.warning("%s: face thresholds calibrated for other models: using defaults", path)
    for kind, scorer in (scorers or {}).items():
        if kind not in doc:
            continue
        t = ScoreThreshold.model_validate(doc[kind])
        if t.scorer == scorer:
            found[kind] = t
        else:
            log.warning("%s: %s threshold calibrated for %r, not %r", path, kind, t.scorer, scorer)
    return found
