"""Files that survive a crash or a power cut once written: fsynced, replaced atomically."""

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SYNC_THREADS = 16


def sync_dir(folder: Path) -> None:
    """Make the names in ``folder`` (files created, renamed or removed) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_files(paths: Iterable[Path]) -> None:
    """fsync many files at once: concurrent fsyncs let the filesystem commit them in a few
    journal commits instead of one each. Their folders are the caller's (:func:`sync_dir`)."""
    with ThreadPoolExecutor(SYNC_THREADS) as pool:
        list(pool.map(_sync_file, paths))


def write_atomic(path: Path, data: bytes, *, sync: bool = True) -> None:
    """Replace ``path`` with ``data`` (its folder made if missing): readers see the old file
    or the whole new one, and after a crash it is one of the two. ``sync=False`` leaves the
    fsyncs to the caller (:func:`sync_files` and :func:`sync_dir` for many files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as out:
        out.write(data)
        if sync:
            out.flush()
            os.fsync(out.fileno())
    tmp.replace(path)
    if sync:
        sync_dir(path.parent)
