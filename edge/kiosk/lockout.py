"""The staff PIN lock-out, durable in edge.sqlite, and the local audit trail of desk log-ins.

Two counters of wrong PINs in a row: one per submitted staff id (known or not, so a lock-out
tells nothing about which ids exist; an unknown id is kept as a digest, not as typed) and one
for all ids (row ``''``). A counter reaching its
limit locks for ``lockout_s``, doubling with each further lock up to ``lockout_max_s``; a right
PIN resets its id's counter and the overall one. Every change is one ``BEGIN IMMEDIATE``
transaction on the WAL database with ``synchronous=FULL``, committed before the kiosk answers,
so neither ``kill -9`` nor a restart forgets a wrong PIN. Tries while locked are refused
without a PIN check and, after the first of each lock, without a write, so hammering a locked
kiosk neither grows the audit nor wears the SD card.

Table ``staff_lockout(staff_id PK, failures, locks, locked_until, updated_at, reported)`` and
table ``audit(id, at, event, actor, detail)``: events ``staff_login``, ``staff_login_failed``,
``staff_login_locked`` (the first try refused during a lock), ``staff_locked`` and
``staff_logout``. The actor
is the staff id when it is on the staff list, else ``unknown`` (a PIN typed into the id field
never reaches the audit); PINs are never stored or logged.
"""

import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Self

from common.errors import LifecertError

log = logging.getLogger(__name__)

ALL = ""
_IDLE_S = 86400.0
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS staff_lockout (staff_id TEXT PRIMARY KEY, "
    "failures INTEGER NOT NULL, locks INTEGER NOT NULL, locked_until REAL NOT NULL, "
    "updated_at REAL NOT NULL, reported INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY, at REAL NOT NULL, "
    "event TEXT NOT NULL, actor TEXT, detail TEXT)",
)


def _unknown_key(staff_id: str) -> str:
    """The counter key of an id not on the staff list: a digest, not what was typed."""
    return "?" + hashlib.sha256(staff_id.encode()).hexdigest()[:32]


class LockoutError(LifecertError, OSError):
    """The lock-out table cannot be opened or written."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of one log-in attempt."""

    ok: bool
    retry_after: float = 0.0
    """Seconds until the id (or every id) may try again; 0 when not locked."""


@dataclass(frozen=True)
class _Counter:
    failures: int = 0
    locks: int = 0
    locked_until: float = 0.0
    reported: bool = False
    """A refused try during the current lock is in the audit already."""


class PinLockout:
    """Wrong-PIN counters and the audit table in the terminal's database; a context manager."""

    def __init__(
        self,
        path: Path,
        *,
        max_failures: int = 5,
        max_failures_all: int = 20,
        lockout_s: float = 300.0,
        lockout_max_s: float = 3600.0,
        busy_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.max_failures, self.max_failures_all = max_failures, max_failures_all
        self.lockout_s, self.lockout_max_s = lockout_s, lockout_max_s
        self.clock = clock
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            for statement in _SCHEMA:
                self._db.execute(statement)
        except (OSError, sqlite3.Error) as exc:
            raise LockoutError(f"cannot open the staff lock-out table in {path}: {exc}") from None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    error = f"cannot write the staff lock-out to {self.path}: {exc}"
                    raise LockoutError(error) from None
                raise

    def _counter(self, db: sqlite3.Connection, key: str) -> _Counter:
        row = db.execute(
            "SELECT failures, locks, locked_until, reported FROM staff_lockout WHERE staff_id = ?",
            (key,),
        ).fetchone()
        return _Counter(row[0], row[1], row[2], bool(row[3])) if row else _Counter()

    def _wait(self, counter: _Counter, now: float) -> float:
        # Capped so that a clock set back (no RTC before NTP) cannot lock for longer.
        return min(max(counter.locked_until - now, 0.0), self.lockout_max_s)

    def attempt(self, staff_id: str, known: bool, check: Callable[[], bool]) -> Verdict:
        """Run ``check()`` (the PIN test) unless ``staff_id`` or every id is locked; record it."""
        key, actor = (staff_id, staff_id) if known else (_unknown_key(staff_id), "unknown")
        now = self.clock()
        with self._lock:
            counters = {k: self._counter(self._db, k) for k in (key, ALL)}
        locked, wait = max(
            ((k, self._wait(c, now)) for k, c in counters.items()), key=itemgetter(1)
        )
        if wait > 0:
            if not counters[locked].reported:
                self._refused(locked, actor, wait, now)
            return Verdict(False, wait)
        ok = check()
        now = self.clock()
        with self._write() as db:
            if ok:
                db.execute("DELETE FROM staff_lockout WHERE staff_id IN (?, ?)", (key, ALL))
                self._audit(db, now, "staff_login", actor, None)
                return Verdict(True)
            self._audit(db, now, "staff_login_failed", actor, None)
            wait = max(
                self._fail(db, key, actor, self.max_failures, now),
                self._fail(db, ALL, actor, self.max_failures_all, now),
            )
            db.execute(
                "DELETE FROM staff_lockout WHERE updated_at < ? AND locked_until < ?",
                (now - _IDLE_S, now),
            )
        log.warning("wrong staff PIN (id %s)", actor)
        return Verdict(False, wait)

    def _refused(self, key: str, actor: str, wait: float, now: float) -> None:
        scope = "all staff ids" if key == ALL else "this staff id"
        with self._write() as db:
            db.execute("UPDATE staff_lockout SET reported = 1 WHERE staff_id = ?", (key,))
            detail = f"{scope} locked, {wait:.0f} s left; later tries in this lock not recorded"
            self._audit(db, now, "staff_login_locked", actor, detail)
        log.warning("staff log-in refused: %s locked for %.0f s more (id %s)", scope, wait, actor)

    def _fail(self, db: sqlite3.Connection, key: str, actor: str, limit: int, now: float) -> float:
        """Count a wrong PIN on ``key``; the seconds it is now locked for (0: not locked)."""
        counter = self._counter(db, key)
        failures, locks, until = counter.failures + 1, counter.locks, counter.locked_until
        if failures >= limit:
            wait = min(self.lockout_s * 2**locks, self.lockout_max_s)
            failures, locks, until = 0, locks + 1, now + wait
            scope = "all staff ids" if key == ALL else "this staff id"
            self._audit(db, now, "staff_locked", actor, f"{scope} for {wait:.0f} s")
            log.warning("staff log-in locked: %s for %.0f s (id %s)", scope, wait, actor)
        db.execute(
            "INSERT OR REPLACE INTO staff_lockout VALUES (?, ?, ?, ?, ?, 0)",
            (key, failures, locks, until, now),
        )
        return self._wait(_Counter(failures, locks, until), now)

    @staticmethod
    def _audit(
        db: sqlite3.Connection, at: float, event: str, actor: str, detail: str | None
    ) -> None:
        db.execute(
            "INSERT INTO audit (at, event, actor, detail) VALUES (?, ?, ?, ?)",
            (at, event, actor, detail),
        )

    def audit(self, event: str, actor: str, detail: str | None = None) -> None:
        """Append one line to the audit table (e.g. ``staff_logout``)."""
        with self._write() as db:
            self._audit(db, self.clock(), event, actor, detail)

    def events(self, limit: int = 100) -> list[tuple[float, str, str, str | None]]:
        """The newest audit lines, oldest first: ``(at, event, actor, detail)``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT at, event, actor, detail FROM audit ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [(at, event, actor, detail) for at, event, actor, detail in reversed(rows)]

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
