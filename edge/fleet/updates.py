"""Model bundle updates: download, verify, stage, switch, self-test, keep or roll back.

The bundle the terminal runs is ``[models] bundle``, a symlink to a complete, verified
release under ``<data_dir>/releases/<name>``. An update (a signed ``update`` command):

1. downloads the archive over HTTPS with the device's client certificate, at most the
   signed ``size`` bytes, hashing as it goes (``.<name>.part``);
2. checks the SHA-256 the signed command names, unpacks plain files only into
   ``.<name>.staging``, fsyncs them, verifies the bundle's signed manifest and every
   model's hash (``models.bundle.load_bundle``), renames the folder to ``<name>``;
3. switches: a new symlink renamed over ``[models] bundle`` (atomic);
4. runs the self-test (:mod:`edge.fleet.selftest`) on the new bundle; on failure points
   the symlink back at the previous release and removes the new one.

A journal (``update.json``, replaced atomically at every step) says how far it got. After a
power loss (or kill -9) at any point the symlink names either the old release or the new,
complete one, never a mix; :meth:`Updater.recover` finishes the job at the next start:
before the switch it cleans up and reports the update failed (old version kept); after
it, it runs the self-test again (twice at most, then rolls back).

After the update is acked, the new release is on probation for ``[fleet] probation_s``:
if the service starts a third time within it (the new models crash the terminal, or its
sessions stop it), the release is rolled back and the update reported failed. Its first
``[fleet] probation_sessions`` sessions are counted in the journal too
(:mod:`edge.fleet.probation`): more errors among them than ``probation_max_error_rate``
allows roll it back the same way, however long they take (after ``probation_s`` the
journal's step is ``sessions``: only they are still watched).

A ``revert`` (an operator aborted the rollout) points the symlink back at the release kept
from before the update (the ``previous`` a ``done`` answer names), after checking that the
terminal still runs the rollout's release and that the kept one verifies; else it refuses.
"""

import hashlib
import logging
import os
import shutil
import signal
import ssl
import tarfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from common.errors import LifecertError
from edge.config import EdgeConfig
from edge.fleet import files, selftest
from edge.fleet.probation import Policy, Verdict
from protocol import fleet

log = logging.getLogger(__name__)

JOURNAL: Final = "update.json"
MAX_FILES: Final = 32
MAX_TEST_ATTEMPTS: Final = 2
MAX_PROBATION_STARTS: Final = 2
"""Starts of the service within a new release's probation; one more rolls it back."""
FAULT_ENV: Final = "LIFECERT_EDGE_FAULT_AT"
"""Fault injection for crash tests: the process kills itself (SIGKILL) at this step."""
WATCHED: Final = ("probation", "sessions")
"""Journal steps in which the sessions are counted."""
STEPS: Final = ("download-half", "downloaded", "staged", "switched", "selftest", "tested")
_CHUNK: Final = 256 * 1024


@dataclass(frozen=True)
class Outcome:
    """How an update (or a recovered one) ended, for the command's ack."""

    command_id: str
    status: fleet.AckStatus | None
    """None: no answer yet (the service restarts into the new release, which answers)."""
    detail: str
    data: dict[str, Any]
    restart: bool = False
    """After answering, the service restarts (into the release it now points at)."""


class UpdateError(LifecertError, RuntimeError):
    """An update step failed; the message is the reason sent to central."""


def _fault(step: str) -> None:
    if os.environ.get(FAULT_ENV) == step:
        log.warning("fault injection: killing myself at %s", step)
        os.kill(os.getpid(), signal.SIGKILL)


class Updater:
    """Model-bundle releases, the ``[models] bundle`` symlink and the journal of one terminal
    (:class:`edge.fleet.software.SoftwareUpdater` is the same for the terminal's software)."""

    restarts = False
    """True when a switch takes effect only in a new process (software)."""

    def __init__(self, cfg: EdgeConfig, tls: ssl.SSLContext | None) -> None:
        self.cfg = cfg
        self.tls = tls
        self.pointer = cfg.models.bundle
        self.releases = cfg.data_dir / "releases"
        self.journal = cfg.data_dir / JOURNAL
        self.policy = Policy(cfg.fleet.probation_sessions, cfg.fleet.probation_max_error_rate)
        self._lock = threading.Lock()
        """The session thread counts sessions in the journal the agent's thread also writes."""

    # -- what runs ------------------------------------------------------------------------

    def current(self) -> str | None:
        """The release ``[models] bundle`` points at (its folder name), if it is a symlink."""
        if not self.pointer.is_symlink():
            return None
        return Path(os.readlink(self.pointer)).name

    def _check_pointer(self) -> None:
        if self.pointer.exists() and not self.pointer.is_symlink():
            raise UpdateError(
                f"[models] bundle {self.pointer} is a folder, not a symlink: install it with "
                "`lifecert-edge fleet install-bundle` so updates can switch atomically"
            )

    def _public_key(self) -> Path:
        key = self.cfg.central.model_sign_pub
        if key is None:
            raise UpdateError("no [central] model_sign_pub: cannot verify a bundle")
        return key

    def self_test(self, bundle: Path | None = None) -> str:
        """Run the self-test on ``bundle`` (default: the current one)."""
        folder = self.cfg.fleet.selftest_dir
        if folder is None:
            raise selftest.SelfTestError("no [fleet] selftest_dir: no reference images to test")
        return selftest.run(bundle or self.pointer, self._public_key(), folder)

    # -- an update ------------------------------------------------------------------------

    def release_name(self, args: fleet.UpdateArgs) -> str:
        """The folder under ``releases`` an update installs into."""
        return args.sha256[:16]

    def update(self, command_id: str, args: fleet.UpdateArgs) -> Outcome:
        """Carry out a verified ``update`` command; how it ended."""
        name = self.release_name(args)
        data: dict[str, Any] = {"version": args.version, "release": name}
        if self.current() == name:
            return Outcome(command_id, fleet.AckStatus.DONE, "already running it", data)
        try:
            self._check_pointer()
            self._public_key()
            if self.cfg.fleet.selftest_dir is None:
                raise UpdateError("no [fleet] selftest_dir: an update cannot be self-tested")
            if args.size > self.cfg.fleet.max_bundle_bytes:
                raise UpdateError(f"{args.size} bytes: more than [fleet] max_bundle_bytes")
            previous = self.current()
            self._write_journal(command_id, args, name, previous, "download", 0)
            part = self._download(args, name)
            _fault("downloaded")
            self._stage(part, name)
            self._write_journal(command_id, args, name, previous, "staged", 0)
            _fault("staged")
        except UpdateError as exc:
            self._clean(name, keep=None)
            self.journal.unlink(missing_ok=True)
            return Outcome(command_id, fleet.AckStatus.FAILED, str(exc), data)
        self._write_journal(command_id, args, name, previous, "switched", 0)
        files.point(self.pointer, self.releases / name)
        log.info("switched %s to release %s (was %s)", self.pointer, name, previous)
        _fault("switched")
        if self.restarts:
            log.info("restarting into release %s to self-test it there", name)
            return Outcome(command_id, None, "restarting into it", data, restart=True)
        return self._test_new(command_id, args, name, previous, attempts=1)

    def _test_new(
        self,
        command_id: str,
        args: fleet.UpdateArgs,
        name: str,
        previous: str | None,
        attempts: int,
    ) -> Outcome:
        data = {"version": args.version, "release": name}
        self._write_journal(command_id, args, name, previous, "switched", attempts)
        _fault("selftest")
        try:
            summary = self.self_test(self.releases / name)
        except selftest.SelfTestError as exc:
            back = self._roll_back(name, previous)
            return Outcome(
                command_id,
                fleet.AckStatus.FAILED,
                f"self-test failed: {exc}; rolled back to {back}",
                data | {"rolled_back": True},
                restart=self.restarts,
            )
        self._write_journal(command_id, args, name, previous, "tested", attempts)
        _fault("tested")
        self._clean(name, keep=previous)
        log.info("release %s passed its self-test: %s", name, summary)
        detail = f"running {name}: {summary}"
        return Outcome(command_id, fleet.AckStatus.DONE, detail, _kept(data, previous))

    # -- a revert -------------------------------------------------------------------------

    def revert(self, command_id: str, args: fleet.RevertArgs) -> Outcome:
        """Carry out a verified ``revert`` command: switch from the release its rollout
        installed back to the one kept from before, or refuse when that no longer fits."""
        data = {"release": args.previous, "reverted_from": args.release}
        current = self.current()
        if current == args.previous:
            return Outcome(command_id, fleet.AckStatus.DONE, f"already running {current}", data)
        refused = fleet.AckStatus.REFUSED
        if current != args.release:
            why = (
                f"runs {current or 'no release'}, not {args.release} that rollout "
                f"{args.rollout_id} installed (it has moved on): nothing switched"
            )
            return Outcome(command_id, refused, why, data)
        back = self.releases / args.previous
        if not back.is_dir() or back.is_symlink():
            why = f"the release before it, {args.previous}, is no longer on this terminal"
            return Outcome(command_id, refused, f"{why}: nothing switched", data)
        try:
            self._check_kept(back)
        except UpdateError as exc:
            return Outcome(command_id, refused, f"{exc}: nothing switched", data)
        with self._lock:  # the release left is on probation no more
            self.journal.unlink(missing_ok=True)
        self._roll_back(args.release, args.previous)
        detail = f"switched back from {args.release} to {args.previous}"
        log.info("rollout %s reverted: %s", args.rollout_id, detail)
        return Outcome(command_id, fleet.AckStatus.DONE, detail, data, restart=self.restarts)

    def _check_kept(self, release: Path) -> None:
        """``UpdateError`` unless a kept release is complete and verifies."""
        verify(release, self._public_key())

    def _roll_back(self, name: str, previous: str | None) -> str:
        if previous is not None and (self.releases / previous).is_dir():
            files.point(self.pointer, self.releases / previous)
        else:
            self.pointer.unlink(missing_ok=True)
        shutil.rmtree(self.releases / name, ignore_errors=True)
        log.warning("rolled back from %s to %s", name, previous)
        return previous or "no bundle"

    def _write_journal(
        self,
        command_id: str,
        args: fleet.UpdateArgs,
        name: str,
        previous: str | None,
        step: str,
        attempts: int,
    ) -> None:
        files.write_json(
            self.journal,
            {
                "command_id": command_id,
                "args": args.model_dump(),
                "release": name,
                "previous": previous,
                "step": step,
                "attempts": attempts,
            },
        )

    def _download(self, args: fleet.UpdateArgs, name: str) -> Path:
        self.releases.mkdir(parents=True, exist_ok=True)
        part = self.releases / f".{name}.part"
        digest, got, half = hashlib.sha256(), 0, args.size // 2
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=self.tls))
        timeout = self.cfg.fleet.download_timeout_s
        try:
            with opener.open(args.url, timeout=timeout) as resp, part.open("wb") as out:
                while chunk := resp.read(_CHUNK):
                    got += len(chunk)
                    if got > args.size:
                        raise UpdateError(f"the server sent more than the signed {args.size} B")
                    digest.update(chunk)
                    out.write(chunk)
                    if got - len(chunk) < half <= got:
                        out.flush()
                        _fault("download-half")
                out.flush()
                os.fsync(out.fileno())
        except urllib.error.HTTPError as exc:
            raise UpdateError(f"download refused: HTTP {exc.code} {exc.reason}") from None
        except (OSError, ssl.SSLError) as exc:
            raise UpdateError(f"download failed: {exc}") from None
        if got != args.size or digest.hexdigest() != args.sha256:
            raise UpdateError(
                f"downloaded {got} B with SHA-256 {digest.hexdigest()[:16]}…, not the signed "
                f"{args.size} B {args.sha256[:16]}… (tampered or truncated): refused"
            )
        return part

    def _prepare(self, staging: Path) -> None:
        """Check (and for software, install) what was unpacked into ``staging``."""
        verify(staging, self._public_key())

    def _stage(self, archive: Path, name: str) -> None:
        staging = self.releases / f".{name}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            with tarfile.open(archive, mode="r:") as tar:
                members = tar.getmembers()
                if len(members) > MAX_FILES:
                    raise UpdateError(f"the archive holds more than {MAX_FILES} files")
                for m in members:
                    if not m.isfile() or Path(m.name).name != m.name or m.name.startswith("."):
                        raise UpdateError(f"the archive holds {m.name!r}: plain files only")
                    src = tar.extractfile(m)
                    assert src is not None  # a regular file always has content
                    target = staging / m.name
                    with src, target.open("wb") as out:
                        shutil.copyfileobj(src, out)
                        out.flush()
                        os.fsync(out.fileno())
        except (tarfile.TarError, OSError) as exc:
            raise UpdateError(f"the archive cannot be unpacked: {exc}") from None
        files.fsync_dir(staging)
        self._prepare(staging)
        final = self.releases / name
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        files.fsync_dir(self.releases)
        archive.unlink(missing_ok=True)

    def _clean(self, name: str, keep: str | None) -> None:
        """Remove leftovers of ``name``'s update and releases other than ``name``/``keep``/the
        current one (with ``keep=None`` on a failure: only the leftovers and ``name``)."""
        if not self.releases.is_dir():
            return
        current = self.current()
        for entry in self.releases.iterdir():
            leftover = entry.name in (f".{name}.part", f".{name}.staging")
            if keep is None:
                stale = leftover or (entry.name == name and current != name)
            else:
                stale = entry.name.startswith(".") or entry.name not in {name, keep, current}
            if stale:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

    # -- after a restart ------------------------------------------------------------------

    def recover(self) -> Outcome | None:
        """Finish an update a restart interrupted; its outcome (to ack), or None."""
        doc = files.read_json(self.journal)
        if doc is None:
            return None
        try:
            args = fleet.UpdateArgs.model_validate(doc["args"])
            command_id, name = str(doc["command_id"]), str(doc["release"])
            previous = doc["previous"] if isinstance(doc["previous"], str) else None
            step, attempts = str(doc["step"]), int(doc["attempts"])
        except (KeyError, ValueError, TypeError) as exc:
            log.error("unreadable %s (%s): removed", self.journal, exc)
            self.journal.unlink(missing_ok=True)
            return None
        data = {"version": args.version, "release": name}
        if step in WATCHED and (failed := self.check_sessions()) is not None:
            return failed
        if step == "probation":
            return self._probation_start(doc, command_id, name, previous, data)
        if step == "sessions":
            return None
        if step == "rolled-back":  # by the software launcher: the release kept crashing
            self._clean(name, keep=None)
            detail = str(doc.get("detail", f"rolled back to {previous}"))
            return Outcome(command_id, fleet.AckStatus.FAILED, detail, data | {"rolled_back": True})
        if step == "tested" and self.current() == name:
            self._clean(name, keep=previous)
            detail = f"running {name}"
            return Outcome(command_id, fleet.AckStatus.DONE, detail, _kept(data, previous))
        if step in ("switched", "tested") and self.current() == name:
            if attempts >= MAX_TEST_ATTEMPTS or (wrong := self._not_running(args)):
                back = self._roll_back(name, previous)
                why = wrong or f"self-test did not finish in {attempts} attempts"
                detail = f"{why}; rolled back to {back}"
                return Outcome(
                    command_id, fleet.AckStatus.FAILED, detail, data, restart=self.restarts
                )
            log.warning("an update to %s was interrupted after the switch: testing again", name)
            return self._test_new(command_id, args, name, previous, attempts + 1)
        self._clean(name, keep=None)
        kept = self.current() or "no bundle"
        return Outcome(
            command_id,
            fleet.AckStatus.FAILED,
            f"interrupted at step {step} by a restart; still running {kept}",
            data,
        )

    def _not_running(self, args: fleet.UpdateArgs) -> str | None:
        """Why this process does not run the release it switched to (software), or None."""
        return None

    def finished(self, outcome: Outcome) -> None:
        """The outcome was acked: forget the journal, or, after a switch to a new release,
        keep it as the release's probation (``[fleet] probation_s``)."""
        watch = self.cfg.fleet.probation_s > 0 or self.cfg.fleet.probation_sessions > 0
        with self._lock:
            doc = files.read_json(self.journal)
            probation = watch and outcome.status is fleet.AckStatus.DONE
            if doc is None or not probation or self.current() != doc.get("release"):
                self.journal.unlink(missing_ok=True)
                return
            since = time.time()
            step = {"step": "probation", "attempts": 0, "since": since, "sessions": 0, "errors": 0}
            files.write_json(self.journal, doc | step)

    def _probation_start(
        self,
        doc: dict[str, Any],
        command_id: str,
        name: str,
        previous: str | None,
        data: dict[str, Any],
    ) -> Outcome | None:
        """A start within a new release's probation: the third rolls it back."""
        starts = int(doc["attempts"]) + 1
        if self.current() != name:
            self.journal.unlink(missing_ok=True)
            return None
        since = doc.get("since")
        if isinstance(since, int | float) and time.time() - since >= self.cfg.fleet.probation_s:
            self.end_probation(time.time())  # a start after the time: only sessions watched
            return None
        if starts > MAX_PROBATION_STARTS:
            back = self._roll_back(name, previous)
            detail = (
                f"restarted {starts} times within {self.cfg.fleet.probation_s:g} s of the switch "
                f"to {name}; rolled back to {back}"
            )
            return Outcome(
                command_id,
                fleet.AckStatus.FAILED,
                detail,
                data | {"rolled_back": True},
                restart=self.restarts,
            )
        files.write_json(self.journal, doc | {"attempts": starts})
        log.warning("start %d within the probation of release %s", starts, name)
        return None

    def end_probation(self, now: float) -> None:
        """Forget a release's probation once it has run ``[fleet] probation_s`` and its
        probation sessions passed (until then only the sessions are watched)."""
        with self._lock:
            doc = files.read_json(self.journal)
            if doc is None or doc.get("step") not in WATCHED:
                return
            since = doc.get("since")
            if isinstance(since, int | float) and now - since < self.cfg.fleet.probation_s:
                return
            if self.policy.verdict(*_counts(doc)) is Verdict.PASSED:
                self.journal.unlink(missing_ok=True)
                log.info("release %s passed its probation", doc.get("release"))
            elif doc.get("step") != "sessions":
                files.write_json(self.journal, doc | {"step": "sessions"})

    def session_ended(self, error: bool) -> None:
        """Count a session (``error``: it ended in an exception) against a release on
        probation; durable before it returns (the error may stop the process next)."""
        with self._lock:
            doc = files.read_json(self.journal)
            if doc is None or doc.get("step") not in WATCHED:
                return
            sessions, errors = _counts(doc)
            if self.policy.verdict(sessions, errors) is not Verdict.WATCHING:
                return
            counts = {"sessions": sessions + 1, "errors": errors + int(error)}
            files.write_json(self.journal, doc | counts)

    def check_sessions(self) -> Outcome | None:
        """Roll back a release on probation whose sessions failed; the outcome to ack."""
        with self._lock:
            doc = files.read_json(self.journal)
            if doc is None or doc.get("step") not in WATCHED:
                return None
            sessions, errors = _counts(doc)
            if self.policy.verdict(sessions, errors) is not Verdict.FAILED:
                return None
            try:
                args = fleet.UpdateArgs.model_validate(doc["args"])
                command_id, name = str(doc["command_id"]), str(doc["release"])
            except (KeyError, ValueError, TypeError) as exc:
                log.error("unreadable %s (%s): removed", self.journal, exc)
                self.journal.unlink(missing_ok=True)
                return None
            if self.current() != name:
                self.journal.unlink(missing_ok=True)
                return None
            previous = doc["previous"] if isinstance(doc.get("previous"), str) else None
            back = self._roll_back(name, previous)
            data = {"version": args.version, "release": name, "rolled_back": True}
            detail = f"{self.policy.reason(sessions, errors)}; rolled back to {back}"
            # answered again after a restart if this answer does not reach central
            files.write_json(self.journal, doc | {"step": "rolled-back", "detail": detail})
            # the running session holds the bad release: restart into the old one
            return Outcome(command_id, fleet.AckStatus.FAILED, detail, data, restart=True)

    # -- a local install ------------------------------------------------------------------

    def install(self, source: Path) -> str:
        """Copy a verified bundle folder into a release and point at it; its name."""
        self._check_pointer()
        key = self._public_key()
        verify(source, key)
        digest = hashlib.sha256((source / "manifest.jws").read_bytes()).hexdigest()
        name = f"local-{digest[:12]}"
        staging = self.releases / f".{name}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for entry in sorted(source.iterdir()):
            if entry.is_file():
                shutil.copyfile(entry, staging / entry.name)
                with (staging / entry.name).open("rb+") as f:
                    os.fsync(f.fileno())
        files.fsync_dir(staging)
        verify(staging, key)
        shutil.rmtree(self.releases / name, ignore_errors=True)
        os.replace(staging, self.releases / name)
        files.fsync_dir(self.releases)
        files.point(self.pointer, self.releases / name)
        return name


def verify(folder: Path, public_key: Path) -> str:
    """Verify a bundle folder (signature, every model's hash); its manifest version."""
    from models.bundle import load_bundle  # the models' code loads only when a bundle is checked
    from models.errors import BundleError

    try:
        manifest, _ = load_bundle(folder, public_key)
    except BundleError as exc:
        raise UpdateError(f"the bundle does not verify: {exc}") from None
    return manifest.version


def _kept(data: dict[str, Any], previous: str | None) -> dict[str, Any]:
    """A ``done`` answer's data with the release kept from before (what a revert returns
    to), if there was one."""
    return data if previous is None else data | {"previous": previous}


def _counts(doc: dict[str, Any]) -> tuple[int, int]:
    """Sessions and errors a probation journal counted (0 for a bad or missing entry)."""
    sessions, errors = doc.get("sessions"), doc.get("errors")
    return (
        sessions if isinstance(sessions, int) else 0,
        errors if isinstance(errors, int) else 0,
    )
