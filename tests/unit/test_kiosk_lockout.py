"""The staff PIN lock-out in SQLite: per id and overall, doubling, durable, audited without PINs."""

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.kiosk.lockout import PinLockout, Verdict


class Clock:
    """Settable wall clock."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Pins:
    """The PIN check: counts how often it ran, answers what it is told."""

    def __init__(self) -> None:
        self.calls = 0

    def check(self, ok: bool) -> Callable[[], bool]:
        def run() -> bool:
            self.calls += 1
            return ok

        return run


@pytest.fixture
def clock() -> Clock:
    return Clock()


def lockout(path: Path, clock: Clock, **kw: float) -> PinLockout:
    return PinLockout(path / "edge.sqlite", clock=clock, **kw)  # type: ignore[arg-type]


def test_wrong_pins_lock_an_id_and_the_lock_doubles_up_to_its_cap(
    tmp_path: Path, clock: Clock
) -> None:
    pins, guard = Pins(), lockout(tmp_path, clock, lockout_s=300, lockout_max_s=1000)
    for _ in range(4):
        assert guard.attempt("li-wei", True, pins.check(False)) == Verdict(False)
    assert guard.attempt("li-wei", True, pins.check(False)) == Verdict(False, 300)
    assert pins.calls == 5
    clock.now += 100
    assert guard.attempt("li-wei", True, pins.check(True)) == Verdict(False, 200)
    assert pins.calls == 5  # locked: the PIN is not even checked
    assert guard.attempt("wang-fang", True, pins.check(True)).ok  # other ids are not locked
    clock.now += 200
    for _ in range(4):
        assert not guard.attempt("li-wei", True, pins.check(False)).ok
    assert guard.attempt("li-wei", True, pins.check(False)) == Verdict(False, 600)
    clock.now += 600
    for _ in range(5):
        last = guard.attempt("li-wei", True, pins.check(False))
    assert last == Verdict(False, 1000)  # 1200 capped
    clock.now += 1000
    assert guard.attempt("li-wei", True, pins.check(True)).ok
    for _ in range(5):
        last = guard.attempt("li-wei", True, pins.check(False))
    assert last == Verdict(False, 300)  # a right PIN resets the doubling


def test_a_right_pin_resets_the_count(tmp_path: Path, clock: Clock) -> None:
    pins, guard = Pins(), lockout(tmp_path, clock)
    for _ in range(4):
        guard.attempt("li-wei", True, pins.check(False))
    assert guard.attempt("li-wei", True, pins.check(True)).ok
    for _ in range(4):
        assert guard.attempt("li-wei", True, pins.check(False)) == Verdict(False)


def test_unknown_ids_lock_like_known_ones(tmp_path: Path, clock: Clock) -> None:
    """A lock-out must not tell an attacker which staff ids exist."""
    pins, guard = Pins(), lockout(tmp_path, clock)
    known = [guard.attempt("li-wei", True, pins.check(False)) for _ in range(6)]
    unknown = [guard.attempt("zhang-san", False, pins.check(False)) for _ in range(6)]
    assert known == unknown


def test_wrong_pins_over_many_ids_lock_every_id(tmp_path: Path, clock: Clock) -> None:
    pins, guard = Pins(), lockout(tmp_path, clock, max_failures_all=20)
    for n in range(19):
        assert guard.attempt(f"guess-{n}", False, pins.check(False)) == Verdict(False)
    assert guard.attempt("guess-19", False, pins.check(False)) == Verdict(False, 300)
    assert guard.attempt("li-wei", True, pins.check(True)) == Verdict(False, 300)
    assert pins.calls == 20
    clock.now += 300
    assert guard.attempt("li-wei", True, pins.check(True)).ok
    for n in range(19):  # the log-in reset the overall count
        assert guard.attempt(f"again-{n}", False, pins.check(False)) == Verdict(False)


def test_counts_and_locks_survive_a_new_connection(tmp_path: Path, clock: Clock) -> None:
    pins = Pins()
    with lockout(tmp_path, clock) as first:
        for _ in range(3):
            first.attempt("li-wei", True, pins.check(False))
    with lockout(tmp_path, clock) as second:
        second.attempt("li-wei", True, pins.check(False))
        assert second.attempt("li-wei", True, pins.check(False)) == Verdict(False, 300)
    with lockout(tmp_path, clock) as third:
        assert third.attempt("li-wei", True, pins.check(True)) == Verdict(False, 300)


def test_a_clock_set_back_cannot_lock_longer_than_the_cap(tmp_path: Path, clock: Clock) -> None:
    pins, guard = Pins(), lockout(tmp_path, clock, lockout_max_s=3600)
    for _ in range(5):
        guard.attempt("li-wei", True, pins.check(False))
    clock.now -= 30 * 86400  # e.g. booted without an RTC, before NTP
    assert guard.attempt("li-wei", True, pins.check(True)) == Verdict(False, 3600)


def test_the_audit_names_known_ids_only_and_never_a_pin(tmp_path: Path, clock: Clock) -> None:
    pins, guard = Pins(), lockout(tmp_path, clock, max_failures=2)
    guard.attempt("li-wei", True, pins.check(True))
    guard.attempt("li-wei", True, pins.check(False))
    guard.attempt("li-wei", True, pins.check(False))
    guard.attempt("li-wei", True, pins.check(True))
    guard.attempt("471100", False, pins.check(False))  # a PIN typed into the id field
    guard.audit("staff_logout", "li-wei")
    assert [(event, actor) for _, event, actor, _ in guard.events()] == [
        ("staff_login", "li-wei"),
        ("staff_login_failed", "li-wei"),
        ("staff_login_failed", "li-wei"),
        ("staff_locked", "li-wei"),
        ("staff_login_locked", "li-wei"),
        ("staff_login_failed", "unknown"),
        ("staff_logout", "li-wei"),
    ]
    assert guard.events()[3][3] == "this staff id for 300 s"
    guard.close()
    dump = "\n".join(sqlite3.connect(tmp_path / "edge.sqlite").iterdump())
    assert 'INSERT INTO "audit"' in dump and "471100" not in dump


def test_hammering_a_lock_writes_one_audit_line(tmp_path: Path, clock: Clock) -> None:
    pins, guard = Pins(), lockout(tmp_path, clock, max_failures=1, max_failures_all=3)
    guard.attempt("li-wei", True, pins.check(False))
    for _ in range(50):
        assert not guard.attempt("li-wei", True, pins.check(True)).ok
    guard.attempt("x", False, pins.check(False))
    guard.attempt("y", False, pins.check(False))  # the third wrong PIN: every id locked
    for n in range(50):
        assert not guard.attempt(f"z{n}", False, pins.check(True)).ok
    assert pins.calls == 3
    refused = [detail for _, event, _, detail in guard.events() if event == "staff_login_locked"]
    assert len(refused) == 2
    assert refused[0] is not None and refused[0].startswith("this staff id locked, 300 s left")
    assert refused[1] is not None and refused[1].startswith("all staff ids locked, 300 s left")
    clock.now += 300
    for _ in range(2):  # the next lock is reported again, once
        guard.attempt("li-wei", True, pins.check(False))
    kinds = [event for _, event, _, _ in guard.events()]
    assert kinds.count("staff_login_locked") == 3


def test_idle_unlocked_counters_are_pruned(tmp_path: Path, clock: Clock) -> None:
    pins, guard = Pins(), lockout(tmp_path, clock)
    for n in range(10):
        guard.attempt(f"guess-{n}", False, pins.check(False))
    clock.now += 2 * 86400
    guard.attempt("li-wei", True, pins.check(False))
    guard.close()
    rows = sqlite3.connect(tmp_path / "edge.sqlite").execute("SELECT staff_id FROM staff_lockout")
    assert sorted(r[0] for r in rows) == ["", "li-wei"]  # the unknown ids' digests are gone
