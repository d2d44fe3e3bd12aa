"""The durable outbox: every signed result is on disk before anyone is told "done".

One SQLite file (WAL, ``synchronous=FULL``) shared by the running service and
any CLI command: writers take ``BEGIN IMMEDIATE`` and wait out each other with a
busy timeout. :meth:`Outbox.enqueue` allocates the device's next ``seq``, lets
the caller build and sign the result with it, and inserts it in one committed
transaction. Rows stay ``pending`` until central's verified ack marks them
``delivered`` or ``rejected``; unacked rows come due again after
``ack_timeout_s``, doubling up to ``backoff_max_s``.
"""

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

from sqlite_utils import Database

from common.errors import LifecertError
from edge.session.model import Receipt
from protocol import messages
from protocol.messages import Ack, AckStatus

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
Clock = Callable[[], float]


class OutboxError(LifecertError, OSError):
    """The outbox database cannot be opened or written (locked too long, disk, schema)."""


class Status(StrEnum):
    """Where a result stands."""

    PENDING = "pending"
    DELIVERED = "delivered"
    REJECTED = "rejected"


class AckOutcome(StrEnum):
    """What an ack did to the outbox."""

    MARKED = "marked"
    UNKNOWN = "unknown"
    ALREADY = "already"


@dataclass(frozen=True)
class Entry:
    """A signed result ready to store; built by the caller once ``seq`` is known."""

    result_id: str
    jws: str
    retiree_id: str
    method: str
    decision: str


@dataclass(frozen=True)
class Pending:
    """A result due to be (re-)published."""

    result_id: str
    seq: int
    jws: str
    attempts: int


@dataclass(frozen=True)
class Row:
    """One outbox row as operators see it (never the JWS)."""

    result_id: str
    seq: int
    status: Status
    retiree_id: str
    method: str
    decision: str
    created_at: float
    attempts: int
    last_sent_at: float | None
    next_send_at: float
    ack: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def backoff(attempts: int, ack_timeout_s: float, backoff_max_s: float) -> float:
    """Seconds to wait for an ack after the ``attempts``-th send: doubling, capped."""
    return min(ack_timeout_s * 2 ** max(attempts - 1, 0), backoff_max_s)


_ROW_COLUMNS = (
    "result_id, seq, status, retiree_id, method, decision, created_at, attempts, "
    "last_sent_at, next_send_at, ack"
)


class Outbox:
    """The terminal's outbox for one device; a context manager owning one connection."""

    def __init__(
        self,
        path: Path,
        device_id: str,
        *,
        ack_timeout_s: float = 30.0,
        backoff_max_s: float = 600.0,
        busy_timeout_s: float = 10.0,
        clock: Clock = time.time,
    ) -> None:
        self.path = path
        self.device_id = device_id
        self.ack_timeout_s = ack_timeout_s
        self.backoff_max_s = backoff_max_s
        self.clock = clock
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"cannot open the outbox {path}: {exc}") from None
        try:
            self._conn.execute("PRAGMA synchronous=FULL")
            self._db = Database(self._conn)
            self._migrate()
        except sqlite3.Error as exc:
            self._conn.close()
            raise OutboxError(f"cannot prepare the outbox {path}: {exc}") from None
        except OutboxError:
            self._conn.close()
            raise

    def _migrate(self) -> None:
        self._db.enable_wal()
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise OutboxError(
                f"{self.path} has schema version {version}, newer than this software "
                f"({SCHEMA_VERSION}): upgrade lifecert"
            )
        self._db.table("counters").create(
            {"device_id": str, "last_seq": int}, pk="device_id", if_not_exists=True
        )
        self._db.table("outbox").create(
            {
                "result_id": str,
                "device_id": str,
                "seq": int,
                "jws": str,
                "retiree_id": str,
                "method": str,
                "decision": str,
                "status": str,
                "created_at": float,
                "attempts": int,
                "last_sent_at": float,
                "next_send_at": float,
                "ack": str,
            },
            pk="result_id",
            not_null=[
                "device_id",
                "seq",
                "jws",
                "status",
                "created_at",
                "attempts",
                "next_send_at",
            ],
            defaults={"status": Status.PENDING.value, "attempts": 0},
            if_not_exists=True,
        )
        self._db.table("outbox").create_index(["device_id", "seq"], unique=True, if_not_exists=True)
        self._db.table("outbox").create_index(
            ["device_id", "status", "seq"], index_name="outbox_status", if_not_exists=True
        )
        if version < SCHEMA_VERSION:
            self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction, committed (fsync'd) on a clean exit."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise OutboxError(f"outbox {self.path} is busy: {exc}") from None
        try:
            yield conn
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise OutboxError(f"cannot write to the outbox {self.path}: {exc}") from None
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise OutboxError(f"cannot commit to the outbox {self.path}: {exc}") from None

    def enqueue(self, build: Callable[[int], Entry]) -> Receipt:
        """Store one result: ``build(seq)`` signs it with the allocated ``seq``."""
        return self.enqueue_many([build])[0]

    def enqueue_many(self, builds: Sequence[Callable[[int], Entry]]) -> list[Receipt]:
        """Store several results in one transaction, with consecutive ``seq`` numbers."""
        if not builds:
            return []
        with self._write() as conn:
            row = conn.execute(
                "SELECT last_seq FROM counters WHERE device_id = ?", (self.device_id,)
            ).fetchone()
            last = row[0] if row else 0
            now = self.clock()
            receipts: list[Receipt] = []
            records = []
            for offset, build in enumerate(builds, start=1):
                entry = build(last + offset)
                receipts.append(Receipt(entry.result_id, last + offset, now))
                records.append(
                    (
                        entry.result_id,
                        self.device_id,
                        last + offset,
                        entry.jws,
                        entry.retiree_id,
                        entry.method,
                        entry.decision,
                        Status.PENDING.value,
                        now,
                        0,
                        now,
                    )
                )
            conn.executemany(
                "INSERT INTO outbox (result_id, device_id, seq, jws, retiree_id, method, "
                "decision, status, created_at, attempts, next_send_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                records,
            )
            conn.execute(
                "INSERT INTO counters (device_id, last_seq) VALUES (?, ?) "
                "ON CONFLICT(device_id) DO UPDATE SET last_seq = excluded.last_seq",
                (self.device_id, last + len(builds)),
            )
        return receipts

    def due(self, limit: int) -> list[Pending]:
        """Pending results never sent or whose ack is overdue, oldest ``seq`` first."""
        cursor = self._conn.execute(
            "SELECT result_id, seq, jws, attempts FROM outbox "
            "WHERE device_id = ? AND status = ? AND next_send_at <= ? ORDER BY seq LIMIT ?",
            (self.device_id, Status.PENDING.value, self.clock(), limit),
        )
        return [Pending(*r) for r in cursor.fetchall()]

    def mark_sent(self, result_ids: Iterable[str]) -> None:
        """Count a send for each result and schedule its re-send if no ack comes.

        The wait is :func:`backoff` of the new attempt count, computed in SQL.
        """
        ids = list(result_ids)
        if not ids:
            return
        now = self.clock()
        with self._write() as conn:
            conn.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_sent_at = ?, "
                "next_send_at = ? + min(? * (1 << min(attempts, 40)), ?) "
                "WHERE result_id = ? AND status = ?",
                [
                    (now, now, self.ack_timeout_s, self.backoff_max_s, rid, Status.PENDING.value)
                    for rid in ids
                ],
            )

    def mark_acked(self, ack: Ack) -> AckOutcome:
        """Apply one verified ack (see :meth:`mark_acked_many`)."""
        return self.mark_acked_many([ack])[0]

    def mark_acked_many(self, acks: Sequence[Ack]) -> list[AckOutcome]:
        """Mark results ``delivered`` (applied, duplicate) or ``rejected``, in one transaction.

        Acks must already be verified; an ack for another device or an unknown
        result is ``UNKNOWN`` and one for a finished row ``ALREADY``; neither
        changes anything.
        """
        outcomes: list[AckOutcome] = []
        if not acks:
            return outcomes
        with self._write() as conn:
            for ack in acks:
                result_id = str(ack.result_id)
                status = Status.REJECTED if ack.status is AckStatus.REJECTED else Status.DELIVERED
                updated = conn.execute(
                    "UPDATE outbox SET status = ?, ack = ? "
                    "WHERE result_id = ? AND device_id = ? AND status = ?",
                    (
                        status.value,
                        messages.encode(ack).decode(),
                        result_id,
                        ack.device_id,
                        Status.PENDING.value,
                    ),
                ).rowcount
                if updated:
                    outcomes.append(AckOutcome.MARKED)
                    continue
                known = conn.execute(
                    "SELECT 1 FROM outbox WHERE result_id = ? AND device_id = ?",
                    (result_id, ack.device_id),
                ).fetchone()
                outcomes.append(AckOutcome.ALREADY if known else AckOutcome.UNKNOWN)
        return outcomes

    def retry_now(self) -> int:
        """Make every sent-but-unacked result due at once (after a reconnect); how many."""
        now = self.clock()
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE outbox SET next_send_at = ? "
                "WHERE device_id = ? AND status = ? AND attempts > 0 AND next_send_at > ?",
                (now, self.device_id, Status.PENDING.value, now),
            )
            return cursor.rowcount

    def counts(self) -> dict[str, int]:
        """Rows per status for this device (every status present, zero when none)."""
        counts = {s.value: 0 for s in Status}
        for status, n in self._conn.execute(
            "SELECT status, count(*) FROM outbox WHERE device_id = ? GROUP BY status",
            (self.device_id,),
        ):
            counts[status] = n
        return counts

    def oldest_pending_age(self) -> float | None:
        """Seconds since the oldest pending result was stored, or None when none is."""
        row = self._conn.execute(
            "SELECT min(created_at) FROM outbox WHERE device_id = ? AND status = ?",
            (self.device_id, Status.PENDING.value),
        ).fetchone()
        return None if row[0] is None else self.clock() - row[0]

    def count_since(self, since: float) -> int:
        """Results this device stored at or after ``since`` (a clock value), any status."""
        row = self._conn.execute(
            "SELECT count(*) FROM outbox WHERE device_id = ? AND created_at >= ?",
            (self.device_id, since),
        ).fetchone()
        return int(row[0])

    def rows(self, status: Status | None = None, limit: int = 100) -> list[Row]:
        """The newest rows (optionally of one status), newest first, without the JWS."""
        where, params = "device_id = ?", [self.device_id]
        if status is not None:
            where += " AND status = ?"
            params.append(status.value)
        return [
            self._row(r)
            for r in self._db.table("outbox").rows_where(
                where, params, order_by="seq DESC", limit=limit, select=_ROW_COLUMNS
            )
        ]

    def get(self, result_id: str) -> Row | None:
        """One row by result id, or None."""
        found = list(
            self._db.table("outbox").rows_where(
                "result_id = ? AND device_id = ?", [result_id, self.device_id], select=_ROW_COLUMNS
            )
        )
        return self._row(found[0]) if found else None

    def last_pass(self, retiree_id: str) -> str | None:
        """The result id of this device's newest pass for ``retiree_id``, or None."""
        row = self._conn.execute(
            "SELECT result_id FROM outbox WHERE device_id = ? AND retiree_id = ?"
            " AND decision = 'pass' ORDER BY seq DESC LIMIT 1",
            (self.device_id, retiree_id),
        ).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def _row(record: dict[str, Any]) -> Row:
        return Row(**{**record, "status": Status(record["status"])})

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
