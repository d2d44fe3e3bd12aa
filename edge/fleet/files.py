"""Crash-safe file operations: what is on disk after a power loss is the old or the new."""

import json
import os
from pathlib import Path
from typing import Any

from common.durable import sync_dir as fsync_dir
from common.durable import write_atomic


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """``write_atomic`` of a JSON document."""
    write_atomic(path, json.dumps(doc, sort_keys=True, indent=1).encode())


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON document at ``path``; None if there is none (or it is unreadable)."""
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def point(link: Path, target: Path) -> None:
    """Make the symlink ``link`` point at ``target``, atomically (a new link renamed over it)."""
    tmp = link.with_name(f".{link.name}.new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)
    fsync_dir(link.parent)
