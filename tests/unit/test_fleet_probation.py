"""Session probation: the policy, and the counts an updater keeps in its journal."""

import json
import os
import time
import uuid
from pathlib import Path

import pytest

from edge.config import EdgeConfig
from edge.fleet.probation import Policy, Verdict
from edge.fleet.updates import Outcome, Updater
from protocol import fleet


def test_only_errors_beyond_the_rate_over_the_window_fail_a_release() -> None:
    policy = Policy(sessions=10, max_error_rate=0.3)
    assert policy.verdict(0, 0) is Verdict.WATCHING
    assert policy.verdict(9, 3) is Verdict.WATCHING  # 3 of 10 is allowed
    assert policy.verdict(10, 3) is Verdict.PASSED  # the window is full
    assert policy.verdict(4, 4) is Verdict.FAILED  # no later session can bring it under
    assert policy.verdict(10, 4) is Verdict.FAILED
    assert "4 of the first 5 session(s) ended in an error" in policy.reason(5, 4)
    assert Policy(sessions=0, max_error_rate=0.3).verdict(0, 0) is Verdict.PASSED  # off
    assert Policy(sessions=3, max_error_rate=0.0).verdict(1, 1) is Verdict.FAILED


def _on_probation(tmp_path: Path, **fleet_settings: object) -> Updater:
    """An updater that switched from release ``old`` to ``new``, acked and on probation."""
    cfg = EdgeConfig.model_validate(
        {
            "device_id": "term-u01",
            "data_dir": str(tmp_path / "var"),
            "mqtt": {"tls": {"ca_file": "ca", "cert_file": "c", "key_file": "k"}},
            "central": {"sign_pub": "s", "seal_pub": "p", "model_sign_pub": "m"},
            "models": {"bundle": str(tmp_path / "models")},
            "fleet": fleet_settings,
        }
    )
    updater = Updater(cfg, None)
    for name in ("old", "new"):
        (updater.releases / name).mkdir(parents=True)
    os.symlink(updater.releases / "new", updater.pointer)
    args = fleet.UpdateArgs(
        rollout_id="r1", url="https://x/r.tar", sha256="0" * 64, size=1, version="v2"
    )
    cid = str(uuid.uuid4())
    journal = {"command_id": cid, "args": args.model_dump(), "release": "new", "previous": "old"}
    updater.journal.write_text(json.dumps(journal | {"step": "tested", "attempts": 1}))
    updater.finished(Outcome(cid, fleet.AckStatus.DONE, "running new", {}))
    assert json.loads(updater.journal.read_text())["step"] == "probation"
    return updater


def test_sessions_ending_in_errors_roll_the_new_release_back(tmp_path: Path) -> None:
    updater = _on_probation(tmp_path)
    for error in (False, True, False, True, True):  # honest sessions do not count against it
        updater.session_ended(error)
        assert updater.check_sessions() is None
    updater.session_ended(True)  # the 4th error: more than 0.3 of 10
    # a restart (the error stopped the process) finds the counts in the journal
    back = Updater(updater.cfg, None).recover()
    assert back is not None and back.status is fleet.AckStatus.FAILED
    assert back.data["rolled_back"] and back.restart
    assert "4 of the first 6 session(s) ended in an error" in back.detail
    assert back.detail.endswith("rolled back to old")
    assert updater.current() == "old" and not (updater.releases / "new").exists()
    updater.finished(back)
    assert not updater.journal.exists()
    updater.session_ended(True)  # no release on probation: nothing to count
    assert not updater.journal.exists() and updater.check_sessions() is None


def test_the_window_ends_after_its_sessions_and_the_time(tmp_path: Path) -> None:
    updater = _on_probation(tmp_path, probation_sessions=3, probation_s=60)
    updater.session_ended(False)
    updater.end_probation(time.time() + 61)  # time over, sessions not: only they are watched
    doc = json.loads(updater.journal.read_text())
    assert doc["step"] == "sessions" and doc["sessions"] == 1
    assert updater.recover() is None and updater.recover() is None
    assert updater.recover() is None  # starts after the time do not count
    assert updater.current() == "new"
    updater.session_ended(True)  # 1 error is more than 0.3 of 3 sessions
    back = updater.check_sessions()
    assert back is not None and back.status is fleet.AckStatus.FAILED
    assert updater.current() == "old"
    # the answer did not reach central: the next start answers it again
    again = Updater(updater.cfg, None).recover()
    assert again is not None and again.detail == back.detail and again.data["rolled_back"]


@pytest.mark.parametrize("errors", [0, 1])
def test_a_full_window_within_the_rate_keeps_the_release(tmp_path: Path, errors: int) -> None:
    updater = _on_probation(tmp_path, probation_sessions=4, probation_max_error_rate=0.25)
    for n in range(4):
        updater.session_ended(n < errors)
    for _ in range(3):
        updater.session_ended(True)  # after the window: not counted
    assert updater.check_sessions() is None
    assert json.loads(updater.journal.read_text())["errors"] == errors
    updater.end_probation(time.time())
    assert updater.journal.exists()  # probation_s still running
    updater.end_probation(time.time() + updater.cfg.fleet.probation_s)
    assert not updater.journal.exists() and updater.current() == "new"
