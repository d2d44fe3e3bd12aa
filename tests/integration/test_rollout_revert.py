"""``rollout abort --revert`` on a real fleet: Mosquitto with the generated mTLS +
dynamic-security config, ``lifecert-central run`` (with its bundle server) and three
``lifecert-edge run`` terminal processes, real model bundles, self-tests on real LFW faces.
A rollout reaches every terminal, the operator reverts it, and each terminal runs the bundle
it ran before again (one of them only once it is back online); a terminal that has moved on
since, or no longer holds the release it ran before, refuses with its reason.
"""

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from central.fleet import desired, rollouts
from edge.config import load as load_edge_config
from edge.fleet.updates import Updater
from models.bundle import load_bundle
from protocol import fleet
from provisioning.stack import Stack
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

DEVICES = ["term-v01", "term-v02", "term-v03"]


class Fleet:
    """The running stack: the CLI acts, the tests look through central's Python API."""

    def __init__(self, stack: Stack, bundles: dict[str, Path]) -> None:
        self.stack, self.bundles = stack, bundles
        self.engine = central_db(stack)

    def rollout(self, bundle: str, group: str) -> str:
        """Create a one-wave rollout of ``bundle`` to ``group`` and start it; its id."""
        out = self.stack.central(
            "fleet", "rollout", "create", str(self.bundles[bundle]), "--group", group
        )
        rollout_id = out.split(":")[0]
        self.stack.central("fleet", "rollout", "advance", rollout_id)
        return rollout_id

    def states(self, rollout_id: str) -> dict[str, str]:
        return {r["device_id"]: r["state"] for r in rollouts.devices(self.engine, rollout_id)}

    def details(self, rollout_id: str) -> dict[str, str]:
        return {r["device_id"]: r["detail"] for r in rollouts.devices(self.engine, rollout_id)}

    def wait_states(self, rollout_id: str, want: dict[str, str], timeout: float = 90) -> None:
        self.stack.wait_until(
            lambda: {d: self.states(rollout_id)[d] for d in want} == want,
            timeout,
            f"{rollout_id}: {want} (now {self.states(rollout_id)})",
        )

    def release(self, device_id: str) -> str:
        """The release the terminal's ``[models] bundle`` points at, checked complete."""
        link = pointer(self.stack, device_id)
        cfg = load_edge_config(self.stack.edge_config(device_id))
        assert cfg.central.model_sign_pub is not None
        load_bundle(link.resolve(), cfg.central.model_sign_pub)  # complete and verified
        return link.resolve().name

    def reported(self, device_id: str) -> str | None:
        """The model release the terminal last reported (signed, retained) to central."""
        rows = desired.state(
            self.engine,
            [desired.Member(d, "default") for d in DEVICES],
            dt.datetime.now(dt.UTC),
            dt.timedelta(seconds=2),
        )
        return {r["device_id"]: r["model_version"] for r in rows}[device_id]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[Fleet]:
    built = built_bundle()
    if built is None:
        pytest.skip(
            "no built model bundle in var/models (with var/models-dev/sign.key): make models"
        )
    root = tmp_path_factory.mktemp("revert")
    stack = Stack.create(root / "stack", free_port(), DEVICES)
    mp = pytest.MonkeyPatch()
    for name, value in fleet_env(selftest_dir(shared_data, root / "selftest")).items():
        mp.setenv(name, value)
    bundles = model_bundles(stack.fleet, built, root / "bundles")
    with stack:
        stack.central("db", "upgrade")
        for device_id in DEVICES:
            Updater(load_edge_config(stack.edge_config(device_id)), None).install(bundles["good"])
        stack.broker.start()
        stack.start_central()
        stack.start_edges(DEVICES)
        fleet_ = Fleet(stack, bundles)
        desired.add_to_group(fleet_.engine, "all", DEVICES)
        for device_id in DEVICES:
            desired.add_to_group(fleet_.engine, device_id, [device_id])
        yield fleet_
        fleet_.engine.dispose()
    mp.undo()


def test_abort_revert_switches_every_terminal_back_even_one_that_was_offline(
    running: Fleet,
) -> None:
    stack = running.stack
    before = {d: running.release(d) for d in DEVICES}
    rollout_id = running.rollout("good2", "all")
    running.wait_states(rollout_id, dict.fromkeys(DEVICES, "succeeded"))
    new = {d: running.release(d) for d in DEVICES}
    assert all(new[d] != before[d] for d in DEVICES)

    stack.stop("term-v03")  # away when the operator reverts
    out = stack.central("fleet", "rollout", "abort", rollout_id, "--revert")
    assert "3 terminal(s) asked to switch back" in out, out
    running.wait_states(rollout_id, {"term-v01": "reverted", "term-v02": "reverted"}, 60)
    for device_id in ("term-v01", "term-v02"):
        assert running.release(device_id) == before[device_id]
        assert (
            f"switched back from {new[device_id]} to {before[device_id]}"
            in (running.details(rollout_id)[device_id])
        )
        wait_until(
            lambda d=device_id: running.reported(d) == before[d],
            20,
            f"{device_id} to report the release it runs again",
        )
    assert running.states(rollout_id)["term-v03"] == "reverting"
    assert running.release("term-v03") == new["term-v03"]  # offline: still the new one

    stack.start_edge("term-v03")  # back: the revert waited for it at the broker
    running.wait_states(rollout_id, {"term-v03": "reverted"}, 60)
    assert running.release("term-v03") == before["term-v03"]
    # the release it left is gone from the terminal; the one from before is kept
    releases = pointer(stack, "term-v03").resolve().parent
    assert sorted(p.name for p in releases.iterdir()) == [before["term-v03"]]

    (row,) = json.loads(stack.central("fleet", "rollout", "status", rollout_id, "--json"))
    assert row["state"] == "reverted"
    assert row["waves"] == [{"wave": "100%", "reverted": 3}]
    assert "100%: reverted=3" in stack.central("fleet", "rollout", "status", rollout_id)


def test_a_revert_is_refused_when_the_terminal_moved_on_or_lost_the_release_before(
    running: Fleet,
) -> None:
    stack = running.stack
    # term-v01 takes one rollout, then another: the first's revert no longer fits;
    # term-v02 takes a rollout, then loses the release it ran before (removed by hand)
    first = running.rollout("good2", "term-v01")
    third = running.rollout("good2", "term-v02")
    running.wait_states(first, {"term-v01": "succeeded"})
    taken = running.release("term-v01")
    second = running.rollout("good", "term-v01")
    running.wait_states(third, {"term-v02": "succeeded"})
    running.wait_states(second, {"term-v01": "succeeded"})
    moved_on = running.release("term-v01")
    assert moved_on != taken

    kept = running.release("term-v02")
    releases = pointer(stack, "term-v02").resolve().parent
    (gone,) = [p for p in releases.iterdir() if p.name != kept]
    shutil.rmtree(gone)

    for rollout_id in (first, third):
        stack.central("fleet", "rollout", "abort", rollout_id, "--revert")
    running.wait_states(first, {"term-v01": "revert-failed"}, 60)
    running.wait_states(third, {"term-v02": "revert-failed"}, 60)
    detail = running.details(first)["term-v01"]
    assert f"runs {moved_on}, not {taken}" in detail and "moved on" in detail, detail
    assert f"{gone.name}, is no longer on this terminal" in running.details(third)["term-v02"]
    assert running.release("term-v01") == moved_on  # nothing switched
    assert running.release("term-v02") == kept
    (row,) = rollouts.status(running.engine, first)
    assert row["waves"] == [{"wave": "100%", "revert-failed": 1}]


def test_a_kept_release_that_no_longer_verifies_is_not_switched_back_to(tmp_path: Path) -> None:
    """In process: the terminal's own checks before it points the symlink back."""
    updater, old, new = two_releases(tmp_path, "term-v09")
    args = fleet.RevertArgs(rollout_id="r1", release=new, previous=old)
    model = next((updater.releases / old).glob("*.tflite"))
    good = model.read_bytes()
    model.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))
    refused = updater.revert("c1", args)
    assert refused.status is fleet.AckStatus.REFUSED
    assert "does not verify" in refused.detail and "nothing switched" in refused.detail
    assert updater.current() == new

    model.write_bytes(good)
    done = updater.revert("c2", args)
    assert (done.status, done.detail) == (
        fleet.AckStatus.DONE,
        f"switched back from {new} to {old}",
    )
    assert updater.current() == old and not (updater.releases / new).exists()
    again = updater.revert("c3", args)  # e.g. asked again after an answer was lost
    assert (again.status, again.detail) == (fleet.AckStatus.DONE, f"already running {old}")
