"""Desired config, signed commands and rollouts on a real fleet: Mosquitto with the generated
mTLS + dynamic-security config, ``lifecert-central run`` (with its bundle server) and four
``lifecert-edge run`` terminal processes, real model bundles, self-tests on real LFW faces.
"""

import datetime as dt
import json
import shutil
import ssl
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from central import config as central_config
from central.bootstrap import Central
from central.fleet import alerts as central_alerts
from central.fleet import commands as central_commands
from central.fleet import desired, rollouts
from central.fleet.commands_link import members
from edge.adapters import keys as edge_keys
from edge.config import load as load_edge_config
from edge.fleet.agent import RESTART_EXIT
from edge.fleet.updates import Updater
from models.bundle import load_bundle
from protocol import fleet, messages, signing, topics
from provisioning.stack import Stack
from tests.fixtures.broker import MqttPeer, central_login
from tests.fixtures.ports import free_port
from tests.fixtures.rollout import (
    built_bundle,
    central_db,
    fleet_env,
    model_bundles,
    pointer,
    selftest_dir,
    two_releases,
)
from tests.fixtures.waiting import wait_until

pytestmark = [pytest.mark.integration]

DEVICES = ["term-r01", "term-r02", "term-r03", "term-r04"]
CANARY = DEVICES[:2]
CRASHER = "term-r05"


class Fleet:
    """The running stack and what the tests need around it (the CLI acts, the tests look
    through central's Python API, which the CLI's show/list/status commands print)."""

    def __init__(self, stack: Stack, bundles: dict[str, Path], env: dict[str, str]) -> None:
        self.stack, self.bundles, self.env = stack, bundles, env
        self.engine = central_db(stack)
        self.central_parts = Central(central_config.load(stack.central_config))
        self.trust = self.central_parts.trust

    def central(self, *args: str) -> str:
        return self.stack.central(*args)

    def set_config(self, target: str, setting: str) -> None:
        """What ``fleet config set TARGET SETTING`` does, in this process (faster)."""
        now = dt.datetime.now(dt.UTC)
        desired.set_config(self.engine, target, dict([desired.parse_setting(setting)]), [], now)
        desired.refresh(self.engine, members(self.trust), self.central_parts.signer, now)

    def send(self, action: str, device_id: str) -> str:
        """What ``fleet cmd send ACTION DEVICE`` does, in this process; the command id."""
        now, ttl = dt.datetime.now(dt.UTC), dt.timedelta(minutes=5)
        signer = self.central_parts.signer
        return str(
            central_commands.send(self.engine, signer, device_id, fleet.Action(action), now, ttl)
        )

    def advance(self, rollout_id: str) -> None:
        """What ``fleet rollout advance`` does, in this process."""
        port = self.env["LIFECERT_CENTRAL__ROLLOUT__BUNDLE_PORT"]
        now, ttl = dt.datetime.now(dt.UTC), dt.timedelta(hours=1)
        signer = self.central_parts.signer
        rollouts.advance(self.engine, signer, rollout_id, f"https://127.0.0.1:{port}", ttl, now)

    def config_rows(self) -> dict[str, dict[str, Any]]:
        now, after = dt.datetime.now(dt.UTC), dt.timedelta(seconds=2)
        rows = desired.state(self.engine, members(self.trust), now, after)
        return {r["device_id"]: r for r in rows}

    def drift_alert(self, device_id: str) -> dict[str, Any] | None:
        """The open ``config_drift`` alert on ``device_id``, if central raised one."""
        return next(
            (
                a
                for a in central_alerts.list_alerts(self.engine, open_only=True)
                if a["rule"] == "config_drift" and a["subject"] == device_id
            ),
            None,
        )

    def commands(self) -> dict[str, dict[str, Any]]:
        return {r["command_id"]: r for r in central_commands.listing(self.engine, None, 500)}

    def wait_command(self, command_id: str, timeout: float = 30) -> dict[str, Any]:
        return wait_until(
            lambda: (r := self.commands()[command_id])["status"] not in ("queued", "sent") and r,
            timeout,
            f"an answer to command {command_id}",
        )

    def token_of(self, command_id: str) -> str:
        table = central_commands.commands
        with self.engine.connect() as conn:
            return str(
                conn.execute(
                    sa.select(table.c.token).where(table.c.command_id == uuid.UUID(command_id))
                ).scalar_one()
            )

    def log(self, device_id: str) -> str:
        return (self.stack.logs / f"{device_id}.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[Fleet]:
    built = built_bundle()
    if built is None:
        pytest.skip(
            "no built model bundle in var/models (with var/models-dev/sign.key): make models"
        )
    root = tmp_path_factory.mktemp("fleet")
    stack = Stack.create(root / "stack", free_port(), [*DEVICES, CRASHER])
    env = fleet_env(selftest_dir(shared_data, root / "selftest")) | {
        "LIFECERT_CENTRAL__ALERTS__INTERVAL_S": "1",
        "LIFECERT_CENTRAL__ALERTS__CONFIG_DRIFT_AFTER_S": "3",
    }
    mp = pytest.MonkeyPatch()
    for name, value in env.items():
        mp.setenv(name, value)
    bundles = model_bundles(stack.fleet, built, root / "bundles")
    with stack:
        stack.central("db", "upgrade")
        stack.edge(DEVICES[0], "fleet", "install-bundle", str(bundles["good"]))  # the CLI
        for device_id in [*DEVICES[1:], CRASHER]:  # the same, faster
            Updater(load_edge_config(stack.edge_config(device_id)), None).install(bundles["good"])
        stack.broker.start()
        stack.start_central()
        stack.start_edges([*DEVICES, CRASHER])
        fleet_ = Fleet(stack, bundles, env)
        desired.add_to_group(fleet_.engine, "canary", CANARY)
        desired.add_to_group(fleet_.engine, "four", DEVICES)
        yield fleet_
        fleet_.engine.dispose()
    mp.undo()


def test_desired_config_is_applied_reported_or_refused_with_a_reason(running: Fleet) -> None:
    running.central("fleet", "config", "set", "site:default", "log_level=DEBUG")
    running.stack.wait_until(
        lambda: all(r["state"] == "in sync" for r in running.config_rows().values()),
        20,
        "every terminal to report config v1",
    )
    assert {r["reported_version"] for r in running.config_rows().values()} == {1}
    groups = json.loads(running.central("fleet", "group", "list", "--json"))
    assert {g["group"]: g["devices"] for g in groups}["canary"] == " ".join(CANARY)
    bundle = running.stack.fleet.paths.bundle("term-r01")
    applied = json.loads((bundle / "var" / "desired.json").read_text())
    assert applied["version"] == 1

    # a value the terminal's own schema refuses: the reason shows centrally, nothing changes
    running.central("fleet", "config", "set", "device:term-r01", "link.telemetry_interval_s=-5")
    row = wait_until(
        lambda: (r := running.config_rows()["term-r01"])["refused"] and r, 20, "a refusal"
    )
    assert "telemetry_interval_s" in row["refused"] and "greater than or equal" in row["refused"]
    assert row["reported_version"] == 1 and row["desired_version"] == 2
    assert json.loads((bundle / "var" / "desired.json").read_text())["version"] == 1
    running.stack.wait_until(
        lambda: running.config_rows()["term-r01"]["state"] == "drift", 10, "drift after 2 s"
    )
    # central's alert check turns the refusal into an alert after [alerts] config_drift_after_s
    alert = wait_until(lambda: running.drift_alert("term-r01"), 15, "a config_drift alert")
    assert "desired config version 2" in alert["reason"] and "reports version 1" in alert["reason"]
    assert "greater than or equal" in alert["reason"]
    with running.engine.connect() as conn:
        issued = conn.execute(
            sa.select(desired.desired.c.issued_at).where(desired.desired.c.device_id == "term-r01")
        ).scalar_one()
    assert (alert["raised_at"] - issued).total_seconds() >= 3  # not before the delay
    drifting = central_alerts.list_alerts(running.engine, open_only=True)
    assert [a["subject"] for a in drifting if a["rule"] == "config_drift"] == ["term-r01"]
    # a setting that is not remotely changeable at all
    running.set_config("device:term-r01", "mqtt.host=evil.example")
    running.stack.wait_until(
        lambda: "not changeable remotely" in (running.config_rows()["term-r01"]["refused"] or ""),
        20,
        "the refusal of mqtt.host",
    )


def test_a_forged_foreign_or_replayed_config_is_refused(running: Fleet) -> None:
    running.set_config("device:term-r02", "outbox.poll_interval_s=0.3")
    running.stack.wait_until(
        lambda: running.config_rows()["term-r02"]["state"] == "in sync", 20, "r02 in sync"
    )
    version = running.config_rows()["term-r02"]["reported_version"]
    root = running.stack.fleet.settings.root
    with running.engine.connect() as conn:
        tokens = dict(conn.execute(sa.text("SELECT device_id, token FROM fleet_desired")).all())
    now = fleet.DesiredConfig(
        device_id="term-r02", version=version + 5, issued_at="2026-12-06T00:00:00Z", settings={}
    )
    forger = signing.load_private_key(running.stack.fleet.paths.models / "sign.key")
    forged = signing.Signer(forger, signing.key_fingerprint(forger.public_key()))
    cases = {
        "not a config signed by central": forged.sign(messages.encode(now)),
        "signed for term-r03, not for term-r02": tokens["term-r03"],
    }
    with MqttPeer(
        central_login(running.stack.fleet), running.stack.fleet.settings.broker.port
    ) as peer:
        for reason, token in cases.items():
            topic = topics.device_topic("term-r02", "config", root)
            assert not peer.publish(topic, token.encode(), qos=1, retain=True).is_failure
            running.stack.wait_until(
                lambda reason=reason: (
                    reason in (running.config_rows()["term-r02"]["refused"] or "")
                ),
                20,
                f"r02 to refuse: {reason}",
            )
        # the genuine config again (retained) is old news, not a refusal; bump and replay
        topic = topics.device_topic("term-r02", "config", root)
        old = tokens["term-r02"]
        running.set_config("device:term-r02", "outbox.poll_interval_s=0.4")
        running.stack.wait_until(
            lambda: running.config_rows()["term-r02"]["reported_version"] == version + 1,
            20,
            "r02 at the next version",
        )
        assert not peer.publish(topic, old.encode(), qos=1, retain=True).is_failure
        running.stack.wait_until(
            lambda: "replayed" in (running.config_rows()["term-r02"]["refused"] or ""),
            20,
            "r02 to refuse the replay",
        )
    assert running.config_rows()["term-r02"]["reported_version"] == version + 1


def test_signed_commands_are_acked_and_forged_or_replayed_ones_refused(running: Fleet) -> None:
    out = running.central("fleet", "cmd", "send", "self_test", "term-r03")
    command_id = out.split()[0]
    row = running.wait_command(command_id, 60)
    assert row["status"] == "done", row
    assert "2 reference pairs as expected" in row["detail"]

    assert running.wait_command(running.send("resync_templates", "term-r03"))["status"] == "done"

    root = running.stack.fleet.settings.root
    token = running.token_of(command_id)
    forger = signing.load_private_key(running.stack.fleet.paths.models / "sign.key")
    forged = signing.Signer(forger, signing.key_fingerprint(forger.public_key()))
    body = json.dumps(
        {
            "format": "lifecert-cmd/1",
            "command_id": str(uuid.uuid4()),
            "device_id": "term-r03",
            "action": "restart",
            "args": {},
            "issued_at": "2026-12-06T00:00:00Z",
            "expires_at": "2036-12-06T00:00:00Z",
        }
    ).encode()
    with MqttPeer(
        central_login(running.stack.fleet), running.stack.fleet.settings.broker.port
    ) as peer:
        cmd_r03 = topics.device_topic("term-r03", "cmd", root)
        cmd_r04 = topics.device_topic("term-r04", "cmd", root)
        assert not peer.publish(cmd_r03, token.encode(), qos=1).is_failure  # replay
        assert not peer.publish(cmd_r04, token.encode(), qos=1).is_failure  # another device's
        assert not peer.publish(cmd_r03, forged.sign(body).encode(), qos=1).is_failure
    running.stack.wait_until(
        lambda: (
            "already received (replayed)" in running.log("term-r03")
            and "not a command signed by central" in running.log("term-r03")
            and "signed for term-r03, not for term-r04" in running.log("term-r04")
        ),
        20,
        "the terminals to refuse the replayed, forged and foreign commands",
    )
    assert running.stack.running("term-r03")  # the forged restart did nothing

    assert running.wait_command(running.send("restart", "term-r04"))["status"] == "done"
    running.stack.wait_until(lambda: not running.stack.running("term-r04"), 20, "r04 to exit")
    assert running.stack._procs["term-r04"].returncode == 75
    running.stack.start_edge("term-r04")


def _rollout(running: Fleet, bundle: str, *extra: str) -> str:
    out = running.central("fleet", "rollout", "create", str(running.bundles[bundle]), *extra)
    return out.split(":")[0]


def _states(running: Fleet, rollout_id: str) -> dict[str, str]:
    return {r["device_id"]: r["state"] for r in rollouts.devices(running.engine, rollout_id)}


def _verified_release(running: Fleet, device_id: str) -> str:
    link = pointer(running.stack, device_id)
    cfg = load_edge_config(running.stack.edge_config(device_id))
    assert cfg.central.model_sign_pub is not None
    load_bundle(link.resolve(), cfg.central.model_sign_pub)  # complete and verified
    return link.resolve().name


def test_a_bad_bundle_is_rolled_back_on_every_canary_and_never_reaches_the_rest(
    running: Fleet,
) -> None:
    before = {d: _verified_release(running, d) for d in DEVICES}
    rollout_id = _rollout(running, "bad", "--group", "four", "--canary", "canary", "--wave", "100")
    assert set(_states(running, rollout_id).values()) == {"pending"}
    running.central("fleet", "rollout", "advance", rollout_id)
    running.stack.wait_until(
        lambda: {_states(running, rollout_id)[d] for d in CANARY} == {"failed"},
        90,
        "both canaries to fail their self-test",
    )
    status = json.loads(running.central("fleet", "rollout", "status", rollout_id, "--json"))[0]
    assert status["state"] == "halted", status
    rows = rollouts.devices(running.engine, rollout_id)
    for row in rows:
        if row["device_id"] in CANARY:
            assert "self-test failed" in row["detail"] and "rolled back" in row["detail"]
        else:
            assert row["state"] == "pending"
    with pytest.raises(rollouts.RolloutError, match="halted"):
        running.advance(rollout_id)
    assert {d: _verified_release(running, d) for d in DEVICES} == before
    offered = {r["device_id"] for r in running.commands().values() if r["rollout_id"] == rollout_id}
    assert offered == set(CANARY)

    # a device that was never offered it may not even download it
    archive = f"{running.env['LIFECERT_CENTRAL__ROLLOUT__BUNDLE_PORT']}/rollouts/{rollout_id}.tar"
    bundle = running.stack.fleet.paths.bundle("term-r03")
    ctx = ssl.create_default_context(cafile=str(bundle / "ca.pem"))
    ctx.load_cert_chain(str(bundle / "device.pem"), str(bundle / "device.key"))
    with pytest.raises(urllib.error.HTTPError, match="403"):
        urllib.request.urlopen(f"https://127.0.0.1:{archive}", context=ctx, timeout=10)


def test_a_good_bundle_reaches_every_terminal_wave_by_wave(running: Fleet) -> None:
    rollout_id = _rollout(
        running, "good2", "--group", "four", "--canary", "canary", "--wave", "50", "--auto"
    )
    waves = rollouts.status(running.engine, rollout_id)[0]["waves"]
    assert [w["wave"] for w in waves] == ["canary", "50%", "100%"]
    running.advance(rollout_id)  # the first wave; the service starts the others by itself
    running.stack.wait_until(
        lambda: rollouts.status(running.engine, rollout_id)[0]["state"] != "running",
        120,
        "the rollout to go through its three waves",
    )
    offers = [c for c in running.commands().values() if c["rollout_id"] == rollout_id]
    times = {c["device_id"]: c["acked_at"] for c in offers}
    assert max(times[d] for d in CANARY) <= min(t for d, t in times.items() if d not in CANARY)
    st = rollouts.status(running.engine, rollout_id)[0]
    assert st["state"] == "done", st
    assert set(_states(running, rollout_id).values()) == {"succeeded"}
    (release,) = {_verified_release(running, d) for d in DEVICES}
    assert not release.startswith("local-")
    wait_until(
        lambda: {running.config_rows()[d]["model_version"] for d in DEVICES} == {release},
        20,
        "every terminal to report the new release",
    )
    shown = running.central("fleet", "config", "show", "--json", "--device", "term-r04")
    assert json.loads(shown)[0]["model_version"] == release


# -- kill -9 at each step of an update -------------------------------------------------------

# Each start of the terminal process crashes at the next step (the fault is injected at that
# step: the process SIGKILLs itself there), and first recovers from the previous crash. The
# order keeps a recovery from reaching the next start's own step.
CRASH_PLAN = [  # (step to crash at, what the recovery of that crash must leave)
    ("switched", "new"),  # after the switch, before the self-test: tested again, kept
    ("download-half", "old"),
    ("selftest", "new"),
    ("downloaded", "old"),
    ("tested", "new"),
    ("staged", "old"),
]


def _offer(running: Fleet, bundle: str, advance: bool = True) -> str:
    central = Central(central_config.load(running.stack.central_config))
    now = dt.datetime.now(dt.UTC)
    s = central.cfg.rollout
    rollout_id = rollouts.create(
        running.engine,
        members(running.trust),
        running.bundles[bundle],
        s.model_sign_pub,
        s.store_dir,
        canary=[],
        percents=[],
        max_failure_rate=0.5,
        max_bytes=s.max_bundle_bytes,
        now=now,
        only=[CRASHER],
    )
    if advance:
        running.advance(rollout_id)
    return rollout_id


def _leftovers(running: Fleet) -> list[str]:
    releases = running.stack.fleet.paths.bundle(CRASHER) / "var" / "releases"
    return sorted(p.name for p in releases.iterdir() if p.name.startswith("."))


def test_kill_9_at_each_step_of_an_update_leaves_the_old_or_the_new_bundle(
    running: Fleet,
) -> None:
    stack, fault = running.stack, "LIFECERT_EDGE_FAULT_AT"
    stack.stop(CRASHER)
    current = _verified_release(running, CRASHER)
    names = {"good": "", "good2": ""}
    pending: tuple[str, str, str] | None = None  # rollout, old release, expectation
    for step, expect in [*CRASH_PLAN, (None, None)]:
        stack.start_edge(CRASHER, extra_env={fault: step} if step else {})
        if pending is not None:
            rollout_id, old, expected = pending
            stack.wait_until(
                lambda rid=rollout_id: _states(running, rid)[CRASHER] in ("succeeded", "failed"),
                60,
                f"the terminal to recover from the crash and answer {rollout_id}",
            )
            now_running = _verified_release(running, CRASHER)
            state = _states(running, rollout_id)[CRASHER]
            if expected == "old":
                assert (now_running, state) == (old, "failed"), stack.log_tail(CRASHER)
                detail = rollouts.devices(running.engine, rollout_id)[0]["detail"]
                assert "interrupted at step" in detail
            else:
                assert now_running != old and state == "succeeded", stack.log_tail(CRASHER)
            assert _leftovers(running) == []
            current = now_running
        if step is None:
            break
        bundle = "good2" if current == names["good"] else "good"
        rollout_id = _offer(running, bundle)
        stack.wait_until(lambda: not stack.running(CRASHER), 60, f"the crash at {step}")
        assert stack._procs[CRASHER].returncode == -9
        names[bundle] = rollouts.status(running.engine, rollout_id)[0]["sha256"][:16]
        link = pointer(stack, CRASHER).resolve().name
        assert link in (current, names[bundle])  # never anything else, even mid-update
        assert f"fault injection: killing myself at {step}" in stack.log_tail(CRASHER, 40)
        pending = (rollout_id, current, expect)


def test_a_tampered_bundle_is_refused_by_central_and_by_the_terminal(
    running: Fleet, tmp_path: Path
) -> None:
    s = running.central_parts.cfg.rollout
    tampered = tmp_path / "tampered"
    shutil.copytree(running.bundles["good2"], tampered)
    model = next(tampered.glob("*.tflite"))
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(rollouts.RolloutError, match="does not match its SHA-256"):
        rollouts.create(
            running.engine,
            members(running.trust),
            tampered,
            s.model_sign_pub,
            s.store_dir,
            canary=[],
            percents=[],
            max_failure_rate=0.5,
            max_bytes=s.max_bundle_bytes,
            now=dt.datetime.now(dt.UTC),
        )

    # an archive changed on central's disk after the offer was signed
    before = _verified_release(running, CRASHER)
    rollout_id = _offer(running, "good", advance=False)
    if rollouts.status(running.engine, rollout_id)[0]["sha256"].startswith(before):
        rollout_id = _offer(running, "good2", advance=False)  # "good" is what it runs
    archive = rollouts.archive_path(s.store_dir, rollout_id)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    running.advance(rollout_id)
    running.stack.wait_until(
        lambda: _states(running, rollout_id)[CRASHER] == "failed", 60, "the refusal"
    )
    detail = rollouts.devices(running.engine, rollout_id)[0]["detail"]
    assert "tampered or truncated" in detail, detail
    assert _verified_release(running, CRASHER) == before
    assert _leftovers(running) == []


def test_garbage_from_a_terminal_never_stops_central(running: Fleet) -> None:
    """Oversized, unsigned, foreign-signed and malformed reports and acks are dropped."""
    stack = running.stack
    stack.stop(CRASHER)  # its login is bound to its client id: use it while it is away
    root = stack.fleet.settings.root
    bundle = stack.fleet.paths.bundle(CRASHER)
    cfg = load_edge_config(stack.edge_config(CRASHER))
    signer = edge_keys.load(cfg).signer
    fake = fleet.Reported(
        device_id="term-r01", config_version=99, software_version="9", at=dt.datetime.now(dt.UTC)
    )
    garbage = [
        b"\x00" * (fleet.MAX_REPORTED_BYTES + 1),
        b"not a jws",
        signer.sign(b'{"format": "lifecert-reported/1"}').encode(),
        signer.sign(messages.encode(fake)).encode(),  # names another device
    ]
    with MqttPeer(bundle, stack.fleet.settings.broker.port, client_id=CRASHER) as peer:
        for kind in ("reported", "cmdack"):
            for payload in garbage:
                topic = topics.device_topic(CRASHER, kind, root)  # type: ignore[arg-type]
                assert not peer.publish(topic, payload, qos=1).is_failure
    assert running.config_rows()["term-r01"]["reported_version"] != 99
    # central still serves: a command to another terminal is acked
    assert running.wait_command(running.send("resync_templates", "term-r02"))["status"] == "done"
    assert stack.running("central-1")


def test_a_release_whose_sessions_end_in_errors_is_rolled_back_by_the_terminal(
    running: Fleet,
) -> None:
    """Session probation: errors in the sessions after a switch roll the release back, and
    central turns the terminal's answer into a failure that halts the rollout."""
    stack = running.stack
    if not stack.running(CRASHER):
        stack.start_edge(CRASHER)  # the garbage test stops it
    before = _verified_release(running, CRASHER)
    rollout_id = _offer(running, "good", advance=False)
    if rollouts.status(running.engine, rollout_id)[0]["sha256"][:16] == before:
        rollout_id = _offer(running, "good2", advance=False)
    running.advance(rollout_id)
    stack.wait_until(
        lambda: _states(running, rollout_id)[CRASHER] == "succeeded", 60, "the update to pass"
    )
    assert _verified_release(running, CRASHER) != before
    updater = Updater(load_edge_config(stack.edge_config(CRASHER)), None)
    wait_until(
        lambda: json.loads(updater.journal.read_text())["step"] == "probation",
        20,
        "the new release to be on probation",
    )
    # what the terminal's session thread records when certifications end in an exception
    for _ in range(4):  # more than 0.3 of the first 10
        updater.session_ended(error=True)
    stack.wait_until(
        lambda: _states(running, rollout_id)[CRASHER] == "failed", 30, "the rollback's answer"
    )
    detail = rollouts.devices(running.engine, rollout_id)[0]["detail"]
    assert "4 of the first 4 session(s) ended in an error" in detail, detail
    assert f"rolled back to {before}" in detail
    assert rollouts.status(running.engine, rollout_id)[0]["state"] == "halted"
    assert _verified_release(running, CRASHER) == before
    # it restarts into the old release (a kiosk's session held the new models)
    stack.wait_until(lambda: not stack.running(CRASHER), 30, "the terminal to restart")
    assert stack._procs[CRASHER].returncode == RESTART_EXIT
    stack.start_edge(CRASHER)
    assert not updater.journal.exists() and _leftovers(running) == []


def test_a_release_that_keeps_restarting_the_terminal_is_rolled_back(tmp_path: Path) -> None:
    """Probation: the third start within ``[fleet] probation_s`` of a switch rolls back."""
    updater, old, new = two_releases(tmp_path, "term-p01")
    args = fleet.UpdateArgs(
        rollout_id="r1", url="https://x/r1.tar", sha256="0" * 64, size=1, version="v"
    )
    doc = {"command_id": str(uuid.uuid4()), "args": args.model_dump(), "release": new}
    (updater.journal).write_text(
        json.dumps(doc | {"previous": old, "step": "tested", "attempts": 1})
    )
    done = updater.recover()
    assert done is not None and done.status is fleet.AckStatus.DONE
    updater.finished(done)
    assert json.loads(updater.journal.read_text())["step"] == "probation"
    assert updater.recover() is None and updater.recover() is None  # two starts: kept
    assert updater.current() == new
    back = updater.recover()  # the third
    assert back is not None and back.status is fleet.AckStatus.FAILED
    assert back.data["rolled_back"] and "rolled back to " + old in back.detail
    assert updater.current() == old and not (updater.releases / new).exists()
    updater.finished(back)
    assert not updater.journal.exists()

    # a release that ran its probation out (time and sessions) is kept for good
    again = updater.install(tmp_path / "other")  # the second release, installed anew
    doc["release"] = again
    updater.journal.write_text(json.dumps(doc | {"previous": old, "step": "tested", "attempts": 1}))
    updater.finished(updater.recover() or pytest.fail("no outcome"))
    for _ in range(updater.cfg.fleet.probation_sessions):
        updater.session_ended(error=False)
    updater.end_probation(time.time() + updater.cfg.fleet.probation_s)
    assert not updater.journal.exists() and updater.current() == again
