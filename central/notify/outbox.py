"""The durable outbox: messages stored before they are sent, sent with retries, dead letters kept.

``enqueue`` stores a message at most once per ``Message.key`` (a second enqueue of the
same key changes nothing), in the caller's transaction, so a reminder is recorded with
the decision that made it. ``Sender.run_once`` takes the due messages, leasing each for
``lease_s`` (another sender skips it meanwhile; a sender that dies mid-delivery lets the
lease run out and the message is tried again: delivery is at least once, and adapters
pass an idempotency key derived from ``Message.key`` so a gateway can drop the repeat).
A failure is retried after ``backoff_s`` doubling up to ``backoff_max_s``; on a channel
whose messages share one endpoint (``SHARED_ENDPOINT``: a webhook), the pass's other
messages for the same recipient wait with it, untried, instead of each costing its
timeouts on an endpoint that is down. After ``max_attempts`` tries, or a
failure that says retrying cannot help, the message is a dead letter (``status`` dead)
until a person retries it (``retry``).

Logs carry the key, channel and masked recipient: never the body (a one-time code) nor a
full phone number.
"""

import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from central.notify.base import DeliveryError, Message, Notifier
from central.notify.settings import NotifySettings
from central.people.contacts import mask_recipient
from central.store import schema
from central.store.schema import UtcDateTime

log = logging.getLogger(__name__)

MAX_KEY = 200
MAX_BODY = 4_000
_ERROR = 300
_BATCH_LOCK = 0x6C6E6F74  # "lnot": batches of enqueue_many, one at a time (PostgreSQL)
_IN_CHUNK = 1_000  # keys per IN (...) probe
SHARED_ENDPOINT = frozenset({"webhook"})
"""Channels whose recipient is one endpoint for many messages (not a person's address)."""


class Status(StrEnum):
    """Where a message stands."""

    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


outbox = sa.Table(
    "notify_outbox",
    schema.metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("key", sa.String(MAX_KEY), nullable=False, unique=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("recipient", sa.String(254), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("language", sa.String(2), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("last_error", sa.String(_ERROR)),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("sent_at", UtcDateTime),
    sa.Index("ix_notify_outbox_status_next_attempt_at", "status", "next_attempt_at"),
)


class OutboxError(ValueError):
    """A message the outbox refuses to store (too long, no key)."""


def idempotency_key(key: str) -> str:
    """What adapters tell a gateway for ``key``: a hash, so the key's content stays here."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _row(message: Message, now: dt.datetime) -> dict[str, Any]:
    if not message.key or len(message.key) > MAX_KEY:
        raise OutboxError(f"message key must be 1-{MAX_KEY} characters")
    if len(message.body) > MAX_BODY or len(message.subject) > 200:
        raise OutboxError(f"message too long: subject <= 200, body <= {MAX_BODY} characters")
    if len(message.recipient) > 254 or not message.recipient:
        raise OutboxError("recipient must be 1-254 characters")
    return {
        "key": message.key,
        "channel": message.channel,
        "recipient": message.recipient,
        "subject": message.subject,
        "body": message.body,
        "language": message.language,
        "data": dict(message.data),
        "status": Status.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": None,
        "created_at": now,
        "sent_at": None,
    }


def _insert_ignoring_dup(conn: Connection) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(outbox).on_conflict_do_nothing(index_elements=["key"])


def enqueue(conn: Connection, message: Message, now: dt.datetime | None = None) -> bool:
    """Store ``message`` in ``conn``'s transaction unless its key is there; True if stored."""
    row = _row(message, now or dt.datetime.now(dt.UTC))
    stored = conn.execute(_insert_ignoring_dup(conn).returning(outbox.c.id), row).first()
    return stored is not None


def enqueue_many(
    conn: Connection, messages: Iterable[Message], now: dt.datetime | None = None
) -> list[str]:
    """``enqueue`` each of ``messages`` in ``conn``'s transaction; the keys that were new.

    Batches of senders that use this serialise on a lock (SQLite: the write lock every
    transaction takes; PostgreSQL: an advisory lock until commit), so the keys found new
    here are new: the rows go in with a plain ``executemany`` (a multi-row ``RETURNING``
    costs PostgreSQL's driver seconds a thousand rows), ``ON CONFLICT DO NOTHING`` still
    guarding against a single ``enqueue`` racing it."""
    now = now or dt.datetime.now(dt.UTC)
    rows: dict[str, dict[str, Any]] = {}
    for message in messages:
        rows.setdefault(message.key, _row(message, now))
    if not rows:
        return []
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_BATCH_LOCK)))
    keys = list(rows)
    for first in range(0, len(keys), _IN_CHUNK):
        there = sa.select(outbox.c.key).where(outbox.c.key.in_(keys[first : first + _IN_CHUNK]))
        for key in conn.scalars(there):
            del rows[key]
    if rows:
        conn.execute(_insert_ignoring_dup(conn), list(rows.values()))
    return list(rows)


@dataclass(frozen=True)
class Outcome:
    """What one pass of the sender did."""

    sent: int = 0
    retried: int = 0
    dead: int = 0
    deferred: int = 0  # not tried: their endpoint failed earlier in the pass


class Sender:
    """Delivers due messages through the adapter of their channel."""

    def __init__(
        self, engine: Engine, notifiers: Mapping[str, Notifier], settings: NotifySettings
    ) -> None:
        self.engine = engine
        self.notifiers = notifiers
        self.settings = settings

    def backoff(self, attempts: int) -> dt.timedelta:
        """The wait after the ``attempts``-th failed try."""
        seconds = self.settings.backoff_s * 2 ** min(attempts - 1, 30)
        return dt.timedelta(seconds=min(seconds, self.settings.backoff_max_s))

    def _claim(self, now: dt.datetime) -> list[Any]:
        lease = now + dt.timedelta(seconds=self.settings.lease_s)
        with self.engine.begin() as conn:
            due = (
                sa.select(outbox)
                .where(outbox.c.status == Status.PENDING.value, outbox.c.next_attempt_at <= now)
                .order_by(outbox.c.next_attempt_at, outbox.c.id)
                .limit(self.settings.batch)
            )
            if conn.dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            rows = list(conn.execute(due).all())
            if rows:
                conn.execute(
                    outbox.update()
                    .where(outbox.c.id.in_([r.id for r in rows]))
                    .values(next_attempt_at=lease, attempts=outbox.c.attempts + 1)
                )
        return rows

    def run_once(self, now: dt.datetime | None = None) -> Outcome:
        """One pass: deliver every message due at ``now`` (at most ``batch``)."""
        now = now or dt.datetime.now(dt.UTC)
        sent = retried = dead = deferred = 0
        down: dict[tuple[str, str], dt.datetime] = {}  # (channel, recipient) -> next try
        for row in self._claim(now):
            attempts = row.attempts + 1
            who = mask_recipient(row.channel, row.recipient)
            if (retry_at := down.get((row.channel, row.recipient))) is not None:
                self._update(row.id, {"attempts": row.attempts, "next_attempt_at": retry_at})
                deferred += 1
                continue
            try:
                self._deliver(row)
            except DeliveryError as exc:
                error = str(exc)[:_ERROR]
                final = not exc.retryable or attempts >= self.settings.max_attempts
                values: dict[str, Any] = {"last_error": error}
                if final:
                    values["status"] = Status.DEAD.value
                    dead += 1
                    log.warning(
                        "notify %s to %s dead after %d tries: %s", row.key, who, attempts, error
                    )
                else:
                    values["next_attempt_at"] = now + self.backoff(attempts)
                    if row.channel in SHARED_ENDPOINT:
                        down[row.channel, row.recipient] = values["next_attempt_at"]
                    retried += 1
                    log.info("notify %s to %s failed (try %d): %s", row.key, who, attempts, error)
                self._update(row.id, values)
                continue
            self._update(row.id, {"status": Status.SENT.value, "sent_at": now, "last_error": None})
            sent += 1
            log.info("notify %s sent by %s to %s", row.key, row.channel, who)
        if deferred:
            log.info("notify: %d message(s) wait for an endpoint that failed", deferred)
        return Outcome(sent, retried, dead, deferred)

    def _deliver(self, row: Any) -> None:
        notifier = self.notifiers.get(row.channel)
        if notifier is None:
            raise DeliveryError(f"no adapter for channel {row.channel!r}", retryable=False)
        message = Message(
            channel=row.channel,
            recipient=row.recipient,
            subject=row.subject,
            body=row.body,
            key=row.key,
            language=row.language,
            data=dict(row.data or {}),
        )
        try:
            notifier.deliver(message)
        except DeliveryError:
            raise
        except Exception as exc:  # an adapter bug must not stop the others: a retryable try
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc

    def _update(self, row_id: int, values: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(outbox.update().where(outbox.c.id == row_id).values(**values))

    def run(self, stop: threading.Event) -> None:
        """Pass after pass until ``stop`` is set, resting ``interval_s`` when idle."""
        while not stop.is_set():
            try:
                outcome = self.run_once()
            except Exception:  # the database is away, say: the messages wait in the outbox
                log.exception("notify: a sending pass failed; trying again later")
                outcome = Outcome()
            if not (outcome.sent or outcome.retried or outcome.dead):
                stop.wait(self.settings.interval_s)


def dead_letters(conn: Connection, limit: int = 100) -> list[dict[str, Any]]:
    """The dead letters, newest first: key, channel, masked recipient, tries, last error."""
    rows = conn.execute(
        sa.select(outbox)
        .where(outbox.c.status == Status.DEAD.value)
        .order_by(outbox.c.id.desc())
        .limit(limit)
    )
    return [_shown(r) for r in rows]


def _shown(row: Any) -> dict[str, Any]:
    return {
        "key": row.key,
        "channel": row.channel,
        "recipient": mask_recipient(row.channel, row.recipient),
        "status": row.status,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "created_at": row.created_at.isoformat(),
        "sent_at": row.sent_at.isoformat() if row.sent_at else None,
    }


def counts(conn: Connection) -> dict[str, int]:
    """Messages per status."""
    rows = conn.execute(sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status))
    return {s.value: 0 for s in Status} | {status: int(n) for status, n in rows}


def retry(conn: Connection, key: str, now: dt.datetime | None = None) -> bool:
    """Make dead letter ``key`` pending again with fresh tries; False if no such dead letter."""
    result = conn.execute(
        outbox.update()
        .where(outbox.c.key == key, outbox.c.status == Status.DEAD.value)
        .values(
            status=Status.PENDING.value,
            attempts=0,
            next_attempt_at=now or dt.datetime.now(dt.UTC),
        )
    )
    return bool(result.rowcount)
