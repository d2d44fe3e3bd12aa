"""Calibrated thresholds kept in the repository (``models/thresholds.toml``).

``lifecert-models evaluate`` writes them; ``lifecert-models build`` puts them into the
manifest of every bundle with the same version (a hash of every model and its options),
so a fresh machine builds a calibrated bundle without the evaluation data.
"""

import logging
import tomllib
from pathlib import Path
from typing import Any, get_args

import tomli_w

from models.bundle import Mode, Threshold

log = logging.getLogger(__name__)

DEFAULT_PATH = Path(__file__).with_name("thresholds.toml")
HEADER = "# Written by `lifecert-models evaluate`; read by `lifecert-models build`.\n"


def save(path: Path, bundle_version: str, thresholds: dict[Mode, Threshold]) -> None:
    """Write the thresholds calibrated for the bundle version ``bundle_version``."""
    doc: dict[str, Any] = {"bundle_version": bundle_version}
    doc.update({mode: t.model_dump(exclude_none=True) for mode, t in thresholds.items()})
    path.write_text(HEADER + tomli_w.dumps(doc))


def load(path: Path, bundle_version: str) -> dict[Mode, Threshold]:
    """Thresholds for this bundle version, or ``{}`` when absent or for other models."""
    if not path.is_file():
        return {}
    doc = tomllib.loads(path.read_text())
    if doc.pop("bundle_version", None) != bundle_version:
        log.warning("%s was calibrated for other models: using default thresholds", path)
        return {}
    return {mode: Threshold.model_validate(doc[mode]) for mode in get_args(Mode) if mode in doc}
