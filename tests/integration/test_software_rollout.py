"""Rollouts of the terminal software on a real fleet: Mosquitto (mTLS + dynamic security),
``lifecert-central run`` with its bundle server, terminals started the way systemd starts
them (``<data_dir>/software/current/bin/lifecert-edge``, restarted when they exit non-zero),
real wheels of this project built with ``pip wheel`` at bumped versions, self-tests on
real LFW faces.
"""

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import pytest

from central import config as central_config
from central.bootstrap import Central
from central.fleet import commands as central_commands
from central.fleet import desired, rollouts
from central.fleet.commands_link import members
from edge.config import load as load_edge_config
from edge.fleet.software import SoftwareUpdater
from edge.fleet.updates import Updater
from protocol import signing, software
from provisioning.stack import Stack, StackError
from tests.fixtures.ports import free_port
from tests.fixtures.rollout import (
    built_bundle,
    central_db,
    fleet_env,
    model_bundles,
    selftest_dir,
)
from tests.fixtures.software import CRASHES_AT_START, DECIDES_WRONG, build_wheel
from tests.fixtures.waiting import wait_until

pytestmark = [pytest.mark.integration]

DEVICES = ["term-s01", "term-s02", "term-s03"]
CANARY = DEVICES[:2]
CRASHER = "term-s05"
BASE, GOOD, BAD, WRONG = "0.1.1", "0.1.2", "0.1.3", "0.1.4"
PATCHES = {BAD: CRASHES_AT_START, WRONG: DECIDES_WRONG}


class Supervisor:
    """What systemd does for ``lifecert-edge.service``: start ExecStart (through the
    ``current`` symlink) and start it again whenever it exits non-zero (Restart=on-failure)."""

    def __init__(self, stack: Stack, env: Mapping[str, str]) -> None:
        self.stack, self.env = stack, dict(env)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.extra: dict[str, dict[str, str]] = {}
        self.starts: dict[str, int] = {}
        self.exits: dict[str, list[int]] = {}
        self._files: list[IO[bytes]] = []
        self._halt, self._lock = threading.Event(), threading.Lock()
        self._held: set[str] = set()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def data_dir(self, device_id: str) -> Path:
        return self.stack.fleet.paths.bundle(device_id) / "var"

    def _start(self, device_id: str) -> None:
        script = self.data_dir(device_id) / "software" / "current" / "bin" / "lifecert-edge"
        out = (self.stack.logs / f"{device_id}.log").open("ab")
        self._files.append(out)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env |= self.env | self.extra.get(device_id, {}) | {"PYTHONUNBUFFERED": "1"}
        argv = [str(script), "--config", str(self.stack.edge_config(device_id)), "run"]
        self.procs[device_id] = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd="/"
        )
        self.starts[device_id] = self.starts.get(device_id, 0) + 1

    def start(self, device_ids: list[str]) -> None:
        with self._lock:
            for d in device_ids:
                self._start(d)
        if not self._thread.is_alive():
            self._thread.start()

    def _watch(self) -> None:
        while not self._halt.wait(0.1):
            with self._lock:
                for d, proc in self.procs.items():
                    if d not in self._held and (code := proc.poll()) is not None and code != 0:
                        self.exits.setdefault(d, []).append(code)
                        self._start(d)

    def restart_with(self, device_id: str, extra: dict[str, str]) -> None:
        """Stop the terminal (SIGTERM) and start it again with ``extra`` in its env."""
        with self._lock:
            self._held.add(device_id)
        proc = self.procs[device_id]
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        with self._lock:
            self.extra[device_id] = extra
            self._start(device_id)
            self._held.discard(device_id)

    def running_release(self, device_id: str) -> str:
        """The release folder whose code the terminal's process runs (its PYTHONPATH);
        ``""`` between an exit and the supervisor's restart, and while the launcher script
        runs before it execs the service (a zombie or the launcher has no ``-m edge``)."""
        proc = Path(f"/proc/{self.procs[device_id].pid}")
        try:
            cmdline, environ = (proc / "cmdline").read_bytes(), (proc / "environ").read_bytes()
        except (ProcessLookupError, FileNotFoundError):
            return ""
        if b"\0-m\0edge\0" not in cmdline:
            return ""
        for item in environ.split(b"\0"):
            if item.startswith(b"PYTHONPATH="):
                return Path(item.split(b"=", 1)[1].decode()).parent.name
        raise AssertionError(f"{device_id} runs without PYTHONPATH: not through the launcher")

    def close(self) -> None:
        self._halt.set()
        self._thread.join(timeout=5)
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for f in self._files:
            f.close()


class Fleet:
    def __init__(self, stack: Stack, sup: Supervisor, bundles: dict[str, Path]) -> None:
        self.stack, self.sup, self.bundles = stack, sup, bundles
        self.engine = central_db(stack)
        self.parts = Central(central_config.load(stack.central_config))
        self.port = int(sup.env["LIFECERT_CENTRAL__ROLLOUT__BUNDLE_PORT"])

    def versions(self) -> dict[str, str | None]:
        now = dt.datetime.now(dt.UTC)
        rows = desired.state(self.engine, members(self.parts.trust), now, dt.timedelta(hours=1))
        return {r["device_id"]: r["software_version"] for r in rows}

    def states(self, rollout_id: str) -> dict[str, str]:
        return {r["device_id"]: r["state"] for r in rollouts.devices(self.engine, rollout_id)}

    def details(self, rollout_id: str) -> dict[str, str]:
        return {r["device_id"]: r["detail"] for r in rollouts.devices(self.engine, rollout_id)}

    def reported_at(self, device_id: str) -> Any:
        now = dt.datetime.now(dt.UTC)
        rows = desired.state(self.engine, members(self.parts.trust), now, dt.timedelta(hours=1))
        return {r["device_id"]: r["reported_at"] for r in rows}[device_id]

    def restart(self, device_id: str, extra: dict[str, str]) -> None:
        """Restart a terminal with ``extra`` in its env; wait until it reported again."""
        before = self.reported_at(device_id)
        self.sup.restart_with(device_id, extra)
        self.stack.wait_until(
            lambda: self.reported_at(device_id) != before, 60, f"{device_id} back online"
        )

    def offer(self, bundle: str, only: list[str], advance: bool = True) -> str:
        """A rollout of ``bundle`` to ``only``, first wave started (what the CLI does)."""
        s, now = self.parts.cfg.rollout, dt.datetime.now(dt.UTC)
        rollout_id = rollouts.create(
            self.engine,
            members(self.parts.trust),
            self.bundles[bundle],
            s.model_sign_pub,
            s.store_dir,
            canary=[],
            percents=[],
            max_failure_rate=0.5,
            max_bytes=s.max_bundle_bytes,
            now=now,
            only=only,
        )
        if advance:
            self.advance(rollout_id)
        return rollout_id

    def advance(self, rollout_id: str) -> None:
        signer, ttl = self.parts.signer, dt.timedelta(hours=1)
        url, now = f"https://127.0.0.1:{self.port}", dt.datetime.now(dt.UTC)
        rollouts.advance(self.engine, signer, rollout_id, url, ttl, now)

    def answered(self, rollout_id: str, device_id: str, timeout: float = 60) -> str:
        return str(
            wait_until(
                lambda: (s := self.states(rollout_id)[device_id]) in ("succeeded", "failed") and s,
                timeout,
                f"{device_id} to answer {rollout_id}:\n{self.stack.log_tail(device_id)}",
            )
        )


def _sign_bundles(stack: Stack, wheels: dict[str, Path], out: Path) -> dict[str, Path]:
    """Software bundles signed with the fleet's release key: the first with the CLI."""
    bundles, first = {}, True
    key = signing.load_private_key(stack.fleet.paths.models / "sign.key")
    signer = signing.Signer(key, signing.key_fingerprint(key.public_key()))
    for name, wheel in wheels.items():
        bundles[name] = out / f"sw-{name}"
        if first:
            argv = [sys.executable, "-m", "provisioning", "fleet", "software-bundle", str(wheel)]
            argv += ["--out", str(bundles[name]), "--dir", str(stack.fleet.paths.root)]
            subprocess.run(argv, check=True, capture_output=True, timeout=60, env=stack._env())
            first = False
        else:
            software.write_bundle(wheel, bundles[name], signer)
    return bundles


@pytest.fixture(scope="module")
def sw(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[Fleet]:
    built = built_bundle()
    if built is None:
        pytest.skip("no built model bundle in var/models (with var/models-dev/sign.key)")
    root = tmp_path_factory.mktemp("software")
    stack = Stack.create(root / "stack", free_port(), [*DEVICES, CRASHER])
    env = fleet_env(selftest_dir(shared_data, root / "selftest"))
    mp = pytest.MonkeyPatch()
    for name, value in env.items():
        mp.setenv(name, value)
    sup = Supervisor(stack, env)

    def install(device_id: str, models: Path, bundle: Path) -> None:
        cfg = load_edge_config(stack.edge_config(device_id))
        Updater(cfg, None).install(models)
        if device_id == CRASHER:
            stack.edge(CRASHER, "fleet", "install-software", str(bundle))  # the CLI
        else:
            SoftwareUpdater(cfg, None).install(bundle)

    with stack:
        with ThreadPoolExecutor(5) as pool:  # builds, installs and central's start overlap
            wheels = {
                v: pool.submit(build_wheel, v, root / "wheels", PATCHES.get(v))
                for v in (BASE, GOOD, BAD, WRONG)
            }
            upgrade = pool.submit(stack.central, "db", "upgrade")
            models = model_bundles(stack.fleet, built, root / "models")["good"]
            bundles = _sign_bundles(stack, {v: f.result() for v, f in wheels.items()}, root)
            installs = [pool.submit(install, d, models, bundles[BASE]) for d in [*DEVICES, CRASHER]]
            upgrade.result()
            stack.broker.start()
            stack.start_central()
            for job in installs:
                job.result()
        sup.start([*DEVICES, CRASHER])
        fleet_ = Fleet(stack, sup, bundles)
        desired.add_to_group(fleet_.engine, "canary", CANARY)
        desired.add_to_group(fleet_.engine, "fleet", DEVICES)
        try:
            stack.wait_until(
                lambda: set(fleet_.versions().values()) == {BASE}, 60, f"all terminals on {BASE}"
            )
            yield fleet_
        finally:
            sup.close()
            fleet_.engine.dispose()
    mp.undo()


def _rollout_cli(sw: Fleet, bundle: str) -> str:
    out = sw.stack.central(
        "fleet", "rollout", "create", str(sw.bundles[bundle]), "--group", "fleet",
        "--canary", "canary", "--wave", "100", "--auto", "--max-failure-rate", "0.4",
    )  # fmt: skip
    assert f"software {bundle}" in out, out
    rollout_id = out.split(":", 1)[0]
    sw.stack.central("fleet", "rollout", "advance", rollout_id)
    return rollout_id


def test_a_good_release_reaches_the_canaries_then_the_rest(sw: Fleet) -> None:
    rollout_id = _rollout_cli(sw, GOOD)
    sw.stack.wait_until(
        lambda: rollouts.status(sw.engine, rollout_id)[0]["state"] == "done",
        60,
        f"rollout {rollout_id} done",
    )
    assert set(sw.states(rollout_id).values()) == {"succeeded"}
    for device_id in DEVICES:
        assert sw.sup.running_release(device_id) == GOOD  # the process runs the new code
        assert sw.details(rollout_id)[device_id].startswith(f"running {GOOD}: ")
    sw.stack.wait_until(
        lambda: {sw.versions()[d] for d in DEVICES} == {GOOD}, 20, f"reports of {GOOD}"
    )
    assert sw.versions()[CRASHER] == BASE  # not in the group
    # the canaries answered (done, from the new version) before the rest was offered
    cmds = [c for c in central_commands.listing(sw.engine, None, 500)]
    cmds = {c["device_id"]: c for c in cmds if c["rollout_id"] == rollout_id}
    assert max(cmds[d]["acked_at"] for d in CANARY) <= min(
        cmds[d]["issued_at"] for d in DEVICES[2:]
    )


def test_a_release_that_crashes_at_start_is_rolled_back_on_every_canary(sw: Fleet) -> None:
    before = sw.versions()
    assert {before[d] for d in DEVICES} == {GOOD}, "runs after the good rollout"
    rollout_id = _rollout_cli(sw, BAD)
    for device_id in CANARY:
        assert sw.answered(rollout_id, device_id) == "failed"
        detail = sw.details(rollout_id)[device_id]
        assert "rolled back to " + GOOD in detail and "started 4 times" in detail, detail
    status = rollouts.status(sw.engine, rollout_id)[0]
    assert status["state"] == "halted" and "wave canary" in status["detail"]
    assert {sw.states(rollout_id)[d] for d in DEVICES[2:]} == {"pending"}  # never offered
    for device_id in DEVICES:
        assert sw.sup.running_release(device_id) == GOOD
        current = sw.sup.data_dir(device_id) / "software" / "current"
        assert current.resolve().name == GOOD
    for device_id in CANARY:
        assert "this release is broken" in sw.stack.log_tail(device_id, 200)
        assert sw.sup.exits[device_id].count(1) >= 3  # systemd restarted it, then the launcher
    sw.stack.wait_until(
        lambda: {sw.versions()[d] for d in DEVICES} == {GOOD}, 20, "reports after the rollback"
    )


def test_a_release_that_fails_its_self_test_rolls_itself_back(sw: Fleet) -> None:
    """It starts, but decides wrong: its own self-test fails, it points `current` back,
    answers and restarts into the old version."""
    rollout_id = sw.offer(WRONG, [CRASHER])
    assert sw.answered(rollout_id, CRASHER) == "failed"
    detail = sw.details(rollout_id)[CRASHER]
    assert detail.startswith("self-test failed: ") and f"rolled back to {BASE}" in detail
    sw.stack.wait_until(
        lambda: sw.sup.running_release(CRASHER) == BASE, 30, "the restart into the old one"
    )
    assert sw.sup.exits[CRASHER].count(75) >= 2  # into the new version, back to the old
    assert (sw.sup.data_dir(CRASHER) / "software" / "current").resolve().name == BASE
    sw.stack.wait_until(lambda: sw.versions()[CRASHER] == BASE, 20, "its report")


def test_a_tampered_software_bundle_is_refused_by_central_and_by_the_terminal(
    sw: Fleet, tmp_path: Path
) -> None:
    tampered = tmp_path / "tampered"
    shutil.copytree(sw.bundles[GOOD], tampered)
    wheel = next(tampered.glob("*.whl"))
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    wheel.write_bytes(bytes(data))
    with pytest.raises(StackError, match="does not match its SHA-256 in the signed manifest"):
        sw.stack.central("fleet", "rollout", "create", str(tampered))
    # an archive changed on central's disk after it was checked and its hash signed
    rollout_id = sw.offer(GOOD, [CRASHER], advance=False)
    archive = rollouts.archive_path(sw.parts.cfg.rollout.store_dir, rollout_id)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    sw.advance(rollout_id)
    assert sw.answered(rollout_id, CRASHER) == "failed"
    assert "tampered or truncated" in sw.details(rollout_id)[CRASHER]
    assert sw.sup.running_release(CRASHER) == BASE and sw.versions()[CRASHER] == BASE


def test_kill_9_during_the_switch_leaves_the_old_or_the_new_release(sw: Fleet) -> None:
    fault = "LIFECERT_EDGE_FAULT_AT"
    plan: list[tuple[str, str, str, str]] = [
        ("staged", GOOD, "failed", BASE),  # killed before the switch: the old one
        ("switched", GOOD, "succeeded", GOOD),  # killed right after it: the new one
    ]
    for step, version, outcome, runs in plan:
        old = sw.sup.running_release(CRASHER)
        sw.restart(CRASHER, {fault: step})
        rollout_id = sw.offer(version, [CRASHER])
        sw.stack.wait_until(lambda: -9 in sw.sup.exits.get(CRASHER, []), 60, f"the crash at {step}")
        sw.sup.exits[CRASHER].remove(-9)
        current = sw.sup.data_dir(CRASHER) / "software" / "current"
        assert current.resolve().name in (old, version)  # never anything else
        assert sw.answered(rollout_id, CRASHER) == outcome, sw.details(rollout_id)
        assert sw.sup.running_release(CRASHER) == runs == current.resolve().name
        releases = sw.sup.data_dir(CRASHER) / "software" / "releases"
        assert not [p.name for p in releases.iterdir() if p.name.startswith(".")]
        cfg = load_edge_config(sw.stack.edge_config(CRASHER))
        assert cfg.central.model_sign_pub is not None
        software.verify_bundle(releases / runs, cfg.central.model_sign_pub, installed=True)
    assert f"fault injection: killing myself at {step}" in sw.stack.log_tail(CRASHER, 200)


def test_abort_revert_puts_the_terminals_back_on_the_version_they_ran_before(
    sw: Fleet,
) -> None:
    """The good rollout of the first test, reverted: each terminal switches `current` back,
    answers and restarts into the version it ran before (kept since the update)."""
    (rollout_id,) = [
        r["rollout_id"]
        for r in rollouts.status(sw.engine, None)
        if r["version"] == GOOD and set(sw.states(r["rollout_id"])) == set(DEVICES)
    ]
    assert {sw.sup.running_release(d) for d in DEVICES} == {GOOD}
    out = sw.stack.central("fleet", "rollout", "abort", rollout_id, "--revert")
    assert f"{len(DEVICES)} terminal(s) asked to switch back" in out, out
    sw.stack.wait_until(
        lambda: set(sw.states(rollout_id).values()) == {"reverted"}, 60, "every revert's answer"
    )
    for device_id in DEVICES:
        assert sw.details(rollout_id)[device_id] == f"switched back from {GOOD} to {BASE}"
    sw.stack.wait_until(
        lambda: {sw.sup.running_release(d) for d in DEVICES} == {BASE},
        60,
        f"the restarts into {BASE}",
    )
    sw.stack.wait_until(
        lambda: {sw.versions()[d] for d in DEVICES} == {BASE}, 30, f"reports of {BASE}"
    )
    for device_id in DEVICES:
        current = sw.sup.data_dir(device_id) / "software" / "current"
        assert current.resolve().name == BASE
