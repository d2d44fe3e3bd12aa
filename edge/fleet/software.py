"""Terminal-software updates: the model-bundle machinery (:mod:`edge.fleet.updates`) for
the terminal's own code.

Releases live under ``<data_dir>/software/releases/<version>/``: the signed bundle
(:mod:`protocol.software`: manifest, its JWS and the project's wheel), ``lib/`` (the wheel
installed with ``pip install --no-deps --no-index --target``) and ``bin/lifecert-edge``
(:mod:`edge.fleet.launcher`). ``<data_dir>/software/current`` is the symlink systemd's
``ExecStart`` goes through. An update downloads, verifies and installs a release as for a
model bundle, switches ``current`` atomically and restarts the service (exit 75); the new
version, at its start, checks that it is the one running, runs the self-test and answers
``done``, or points ``current`` back and restarts into the old version, which answers
``failed … rolled back``. A release that crashes before it can do so is rolled back by the
launcher after ``launcher.MAX_LAUNCHES`` starts. The journal (``software/update.json``)
makes every step survive a kill -9: the service runs either the old or the new release.
A ``revert`` points ``current`` back at the release kept from before and restarts into it.
"""

import os
import shutil
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Final

from edge.config import EdgeConfig
from edge.fleet import files, launcher
from edge.fleet.updates import UpdateError, Updater
from protocol import fleet, software

PIP_TIMEOUT_S: Final = 300


def running_version() -> str:
    """The version of the lifecert code this process runs (``unknown`` from a checkout)."""
    import importlib.metadata

    try:
        return importlib.metadata.version(software.PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class SoftwareUpdater(Updater):
    """Software releases, the ``current`` symlink and the software journal."""

    restarts = True

    def __init__(self, cfg: EdgeConfig, tls: ssl.SSLContext | None) -> None:
        super().__init__(cfg, tls)
        root = cfg.data_dir / "software"
        self.pointer = root / "current"
        self.releases = root / "releases"
        self.journal = root / "update.json"

    def release_name(self, args: fleet.UpdateArgs) -> str:
        return args.version

    def _check_pointer(self) -> None:
        if not self.pointer.is_symlink():
            raise UpdateError(
                f"{self.pointer} is not a symlink: the software was not installed with "
                "`lifecert-edge fleet install-software`, so it cannot be switched or rolled back"
            )

    def _roll_back(self, name: str, previous: str | None) -> str:
        """Point ``current`` back; the new release stays until the next update cleans up
        (this process may still be running its code)."""
        if previous is not None and (self.releases / previous).is_dir():
            files.point(self.pointer, self.releases / previous)
        return previous or name

    def _check_kept(self, release: Path) -> None:
        """A kept release must verify and still hold its installed code and launcher."""
        try:
            manifest = software.verify_bundle(release, self._public_key(), installed=True)
        except software.SoftwareBundleError as exc:
            raise UpdateError(f"the release before it does not verify: {exc}") from None
        if manifest.version != release.name:
            raise UpdateError(f"{release} holds version {manifest.version}")
        if not (release / "bin" / "lifecert-edge").is_file() or not (release / "lib").is_dir():
            raise UpdateError(f"the release before it, {release.name}, is incomplete")

    def _prepare(self, staging: Path) -> None:
        """Verify the bundle, install its wheel into ``lib``, add the launcher."""
        try:
            manifest = software.verify_bundle(staging, self._public_key())
        except software.SoftwareBundleError as exc:
            raise UpdateError(f"the software bundle does not verify: {exc}") from None
        if staging.name.strip(".").removesuffix(".staging") != manifest.version:
            raise UpdateError(f"the bundle holds version {manifest.version}, not the offered one")
        argv = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile"]
        argv += ["--no-cache-dir", "--disable-pip-version-check", "--quiet"]
        argv += ["--target", str(staging / "lib"), str(staging / manifest.wheel)]
        try:
            subprocess.run(argv, check=True, capture_output=True, timeout=PIP_TIMEOUT_S)
        except subprocess.CalledProcessError as exc:
            why = exc.stderr.decode(errors="replace").strip().splitlines()[-1:]
            raise UpdateError(f"pip could not install {manifest.wheel}: {why}") from None
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise UpdateError(f"pip could not install {manifest.wheel}: {exc}") from None
        script = staging / "bin" / "lifecert-edge"
        script.parent.mkdir()
        body = Path(launcher.__file__).read_text(encoding="utf-8")
        script.write_text(f"#!{sys.executable}\n{body}", encoding="utf-8")
        script.chmod(0o755)
        for folder, _, names in os.walk(staging):
            for name in names:
                with (Path(folder) / name).open("rb") as f:
                    os.fsync(f.fileno())
            files.fsync_dir(Path(folder))

    def _not_running(self, args: fleet.UpdateArgs) -> str | None:
        running = running_version()
        if running == args.version:
            return None
        return (
            f"the service runs version {running}, not {args.version}: it does not start "
            f"through {self.pointer}/bin/lifecert-edge (see systemd/lifecert-edge.service)"
        )

    def self_test(self, bundle: Path | None = None) -> str:
        """The self-test of the current model bundle, run by the code this process runs."""
        return super().self_test(self.cfg.models.bundle)

    def install(self, source: Path) -> str:
        """Install a verified software bundle folder as a release and point ``current`` at
        it (the first install, or by hand); its version."""
        if self.pointer.exists() and not self.pointer.is_symlink():
            raise UpdateError(f"{self.pointer} exists and is not a symlink: move it away")
        try:
            manifest = software.verify_bundle(source, self._public_key())
        except software.SoftwareBundleError as exc:
            raise UpdateError(str(exc)) from None
        name = manifest.version
        if self.current() == name:
            raise UpdateError(f"version {name} is already the current release")
        staging = self.releases / f".{name}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for entry in (software.MANIFEST, software.SIGNATURE, manifest.wheel):
            shutil.copyfile(source / entry, staging / entry)
        self._prepare(staging)
        shutil.rmtree(self.releases / name, ignore_errors=True)
        os.replace(staging, self.releases / name)
        files.fsync_dir(self.releases)
        files.point(self.pointer, self.releases / name)
        return name
