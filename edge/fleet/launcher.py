"""The start script of one installed software release (``<release>/bin/lifecert-edge``).

:mod:`edge.fleet.software` copies this file (standard library only, the *installing*
version's copy, so a broken release cannot replace it) into every release it installs.
systemd starts ``<data_dir>/software/current/bin/lifecert-edge``; the script resolves the
``current`` symlink once, so the process runs one release from start to end, and execs
``python -P -m edge`` with only that release's ``lib`` on ``PYTHONPATH``.

While a release is on trial (``software/update.json`` names it, switched but not yet past
its probation), every start is counted in ``software/launches.json``; a start past
``MAX_LAUNCHES`` (the release crashes before it can roll itself back, and systemd keeps
restarting it) points ``current`` back at the previous release, notes why in the journal
(``step: rolled-back``) and starts the previous release instead.
"""

import json
import os
import sys
from pathlib import Path

MAX_LAUNCHES = 3
"""Starts of a release on trial: its own restart into it and two more; the next rolls back."""
TRIAL_STEPS = ("switched", "tested", "probation")


def _read(path: Path) -> dict[str, object]:
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _write(path: Path, doc: dict[str, object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _point(link: Path, target: Path) -> None:
    tmp = link.with_name(f".{link.name}.new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)
    fd = os.open(link.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _on_trial(release: Path, root: Path) -> Path | None:
    """Count this start of a release on trial; the previous release if it must roll back."""
    journal = _read(root / "update.json")
    if journal.get("release") != release.name or journal.get("step") not in TRIAL_STEPS:
        return None
    counter = _read(root / "launches.json")
    trial = str(journal.get("command_id"))
    launches = int(str(counter.get("launches", 0))) + 1 if counter.get("trial") == trial else 1
    _write(root / "launches.json", {"trial": trial, "launches": launches})
    previous = journal.get("previous")
    if launches <= MAX_LAUNCHES or not isinstance(previous, str):
        return None
    back = root / "releases" / previous
    if not (back / "bin" / "lifecert-edge").is_file():
        return None
    _point(root / "current", back)
    detail = (
        f"release {release.name} started {launches} times without settling (it crashes at "
        f"start or keeps being restarted); rolled back to {previous}"
    )
    _write(root / "update.json", journal | {"step": "rolled-back", "detail": detail})
    sys.stderr.write(f"lifecert launcher: {detail}\n")
    return back


def main() -> None:
    """Start the service from the release this script belongs to (or roll back first)."""
    release = Path(__file__).resolve().parents[1]
    checking = "--validate-config" in sys.argv[1:]  # ExecStartPre: not a start of the service
    back = None if checking else _on_trial(release, release.parent.parent)
    if back is not None:
        script = back / "bin" / "lifecert-edge"
        os.execv(script, [str(script), *sys.argv[1:]])
    env = dict(os.environ, PYTHONPATH=str(release / "lib"))
    os.execve(sys.executable, [sys.executable, "-P", "-m", "edge", *sys.argv[1:]], env)


if __name__ == "__main__":
    main()
