"""Files that survive a crash or a power cut once written: fsynced, replaced atomically."""

import os
from pathlib import Path


def sync_dir(folder: Path) -> None:
    """Make the names in ``folder`` (files created, renamed or removed) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, sync_folder: bool = True) -> None:
    """Replace ``path`` with ``data``: readers see the old file or the whole new one, and
    after a crash it is one of the two. ``sync_folder=False`` leaves the folder's fsync to
    the caller (one for many files)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
    if sync_folder:
        sync_dir(path.parent)
