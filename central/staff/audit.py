"""The tamper-evident audit log: one append-only chain of every staff action and event.

Each entry (who, their roles, when, action, target, before/after as canonical JSON, the
address, certificate serial and channel they acted from) carries ``prev_hash``, the hash
of the entry before it, and ``hash`` = SHA-256 of its canonical encoding (which includes
``prev_hash`` and its own id). Changing, removing, reordering or inserting an entry
breaks the chain at that entry; ``verify`` finds the first break. A chain rewritten from
some entry on is caught by an anchor (``head``'s id and hash, kept outside the database
by an auditor, then ``verify(expect=...)``).

Central's ``events`` join the chain: ``seal_events`` appends one entry per event not yet
chained (``event_id`` set, ``after`` = the event's canonical JSON), and ``verify``
checks each sealed event still reads the same. ``record`` seals pending events first,
so the chain follows the order things happened in. Appends are serialised: SQLite
transactions here are ``BEGIN IMMEDIATE``; on PostgreSQL ``record`` takes a
transaction-level advisory lock, and ``prev_hash`` is unique, so two appends can never
fork the chain.
"""

import datetime as dt
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from central.staff.identity import Actor
from central.staff.tables import audit_log
from central.store.schema import events
from common.errors import LifecertError

log = logging.getLogger(__name__)

GENESIS = "0" * 64
"""The ``prev_hash`` of the first entry."""

SYSTEM = Actor("system", frozenset(), via="system")
"""The actor of changes no staff member made (bootstrap, migrations)."""

_PG_AUDIT_LOCK = 0x6C69666561  # "lifea": serialises appends to the chain on PostgreSQL
_EVENT_WINDOW = 1000  # sealing looks this far below the newest sealed event for late commits
_BATCH = 5000

COLUMNS = (  # the table's column order
    "id",
    "at",
    "staff_id",
    "roles",
    "action",
    "target",
    "before",
    "after",
    "address",
    "cert_serial",
    "via",
    "event_id",
    "prev_hash",
    "hash",
)
_HASHED = COLUMNS[:-1]
_ID, _AFTER, _EVENT_ID, _PREV, _HASH, _EV = 0, 7, 11, 12, 13, 14  # verify row positions


def canonical_json(value: Any) -> str | None:
    """``value`` as canonical JSON (sorted keys, no spaces, UTF-8 text); None stays None."""
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _stamp(at: dt.datetime) -> str:
    """ISO 8601 in UTC to the microsecond (``+00:00``)."""
    if at.tzinfo is not dt.UTC:
        at = at.astimezone(dt.UTC)
    return at.isoformat(timespec="microseconds")


def encode_values(values: list[Any]) -> bytes:
    """The canonical encoding of an entry from its column values in ``COLUMNS`` order
    (without ``hash``): a compact JSON array, the time as ISO 8601 UTC."""
    values[1] = _stamp(values[1])
    return _ENCODE(values).encode()


def entry_bytes(row: Any) -> bytes:
    """The canonical encoding of an entry (every column but ``hash``): what is hashed."""
    return encode_values([getattr(row, name) for name in _HASHED])


def entry_hash(row: Any) -> str:
    """SHA-256 (hex) of the entry's canonical encoding."""
    return hashlib.sha256(entry_bytes(row)).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One audit entry, as stored."""

    id: int
    at: dt.datetime
    staff_id: str
    roles: str
    action: str
    target: str
    before: str | None
    after: str | None
    address: str | None
    cert_serial: str | None
    via: str
    event_id: int | None
    prev_hash: str
    hash: str


def lock(conn: Connection) -> None:
    """Serialise appends to the chain until ``conn``'s transaction ends (PostgreSQL; a
    SQLite write transaction here is exclusive already)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_AUDIT_LOCK)))


def _head(conn: Connection) -> tuple[int, str]:
    row = conn.execute(
        sa.select(audit_log.c.id, audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)
    ).first()
    return (0, GENESIS) if row is None else (row.id, row.hash)


def _make(prev: tuple[int, str], **values: Any) -> Entry:
    values = {"id": prev[0] + 1, "prev_hash": prev[1], "hash": "", **values}
    draft = Entry(**values)
    return Entry(**(values | {"hash": entry_hash(draft)}))


def _values(entry: Entry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in COLUMNS}


def record(
    conn: Connection,
    actor: Actor,
    action: str,
    target: str,
    before: Any = None,
    after: Any = None,
    *,
    at: dt.datetime | None = None,
) -> Entry:
    """Append what ``actor`` did to ``target`` (inside the caller's transaction).

    ``before`` and ``after`` are JSON-able values (None when there is none); the entry
    commits or rolls back with the change it records.
    """
    lock(conn)
    seal_events(conn, locked=True)
    entry = _make(
        _head(conn),
        at=at or dt.datetime.now(dt.UTC),
        staff_id=actor.staff_id[:64],
        roles=",".join(sorted(actor.roles))[:200],
        action=action[:64],
        target=target[:200],
        before=canonical_json(before),
        after=canonical_json(after),
        address=(actor.address or None) and actor.address[:64],
        cert_serial=actor.cert_serial,
        via=actor.via[:16],
        event_id=None,
    )
    conn.execute(audit_log.insert(), [_values(entry)])
    return entry


def event_json(row: Any) -> str:
    """An ``events`` row as the canonical JSON its audit entry carries in ``after``."""
    return json.dumps(
        {
            "id": row.id,
            "at": _stamp(row.at),
            "kind": row.kind,
            "retiree_id": row.retiree_id,
            "result_id": None if row.result_id is None else str(row.result_id),
            "device_id": row.device_id,
            "actor": row.actor,
            "detail": row.detail,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )


def _unsealed() -> sa.Select[Any]:
    sealed = sa.select(audit_log.c.event_id).where(audit_log.c.event_id == events.c.id)
    return sa.select(events).where(~sa.exists(sealed)).order_by(events.c.id)


def seal_events(conn: Connection, *, everything: bool = False, locked: bool = False) -> int:
    """Append an entry for each event not yet in the chain, in id order, a batch at a
    time; how many were sealed.

    Looks only near the newest sealed event (events commit a little out of id order)
    unless ``everything``.
    """
    if not locked:
        lock(conn)
    head = _head(conn)
    floor = -1
    if not everything:
        floor = (conn.scalar(sa.select(sa.func.max(audit_log.c.event_id))) or 0) - _EVENT_WINDOW
    count = 0
    while rows := conn.execute(_unsealed().where(events.c.id > floor).limit(_BATCH)).all():
        batch = []
        for row in rows:
            entry = _make(
                head,
                at=row.at,
                staff_id=(row.actor or "")[:64],
                roles="",
                action=f"event.{row.kind}"[:64],
                target=(row.retiree_id or row.device_id or "")[:200],
                before=None,
                after=event_json(row),
                address=None,
                cert_serial=None,
                via="event",
                event_id=row.id,
            )
            batch.append(_values(entry))
            head = (entry.id, entry.hash)
        conn.execute(audit_log.insert(), batch)
        count += len(batch)
        floor = rows[-1].id
    return count


def seal_until(engine: Engine, stop: threading.Event, interval_s: float) -> None:
    """Seal new events every ``interval_s`` seconds until ``stop`` is set (a thread of
    ``lifecert-central run``), so events join the chain without waiting for a staff
    action. A failed round is logged and retried at the next."""
    while not stop.wait(interval_s):
        try:
            with engine.begin() as conn:
                sealed = seal_events(conn)
        except DBAPIError as exc:
            log.warning("sealing events into the audit chain failed, retrying: %s", exc.orig)
            continue
        if sealed:
            log.info("%d event(s) sealed into the audit chain", sealed)


def head(engine: Engine) -> tuple[int, str]:
    """The newest entry's ``(id, hash)``: an anchor for an auditor to keep elsewhere."""
    with engine.connect() as conn:
        return _head(conn)


class ChainError(LifecertError, ValueError):
    """Where the chain is broken (``entry_id``) and how."""

    def __init__(self, entry_id: int, problem: str) -> None:
        super().__init__(f"entry {entry_id}: {problem}")
        self.entry_id = entry_id
        self.problem = problem


@dataclass(frozen=True)
class Verified:
    """A verified chain: how many entries, its head, events not yet sealed."""

    entries: int
    head: tuple[int, str]
    unsealed_events: int


def check_rows(
    rows: Iterator[Any], progress: Callable[[int], None] | None = None
) -> tuple[int, str]:
    """Walk verify rows (an entry's columns in ``COLUMNS`` order, then its sealed event's
    current columns) in id order, raising ``ChainError`` at the first bad entry; the last
    ``(id, hash)``."""
    last_id, last_hash = 0, GENESIS
    sha256 = hashlib.sha256
    for count, row in enumerate(rows, 1):
        entry_id = row[_ID]
        if entry_id != last_id + 1:
            raise ChainError(
                last_id + 1, f"missing: the next entry found is {entry_id} (removed or reordered)"
            )
        if row[_PREV] != last_hash:
            raise ChainError(entry_id, "does not follow the entry before it (removed or reordered)")
        if sha256(encode_values(list(row[:_HASH]))).hexdigest() != row[_HASH]:
            raise ChainError(entry_id, "its content does not match its hash (changed)")
        if row[_EVENT_ID] is not None:
            if row[_EV] is None:
                raise ChainError(entry_id, f"event {row[_EVENT_ID]} it seals was removed")
            if event_json(_EventView(*row[_EV:])) != row[_AFTER]:
                raise ChainError(entry_id, f"event {row[_EVENT_ID]} it seals was changed")
        last_id, last_hash = entry_id, row[_HASH]
        if progress is not None and count % 10_000 == 0:
            progress(10_000)
    return last_id, last_hash


class _EventView:
    """The joined event columns of a verify row, named like an ``events`` row."""

    __slots__ = _EVENT_COLUMNS = (
        "id",
        "at",
        "kind",
        "retiree_id",
        "result_id",
        "device_id",
        "actor",
        "detail",
    )

    def __init__(self, *values: Any) -> None:
        for name, value in zip(self._EVENT_COLUMNS, values, strict=True):
            setattr(self, name, value)


def _verify_query() -> sa.Select[Any]:
    joined = audit_log.outerjoin(events, events.c.id == audit_log.c.event_id)
    return (
        sa.select(
            audit_log,
            *(events.c[name].label(f"ev_{name}") for name in _EventView._EVENT_COLUMNS),
        )
        .select_from(joined)
        .order_by(audit_log.c.id)
    )


def count(engine: Engine) -> int:
    """How many entries the chain has."""
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(audit_log)) or 0


def verify(
    engine: Engine,
    *,
    expect: tuple[int, str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Verified:
    """Check the whole chain (and, given ``expect``, that it still holds that anchor);
    ``ChainError`` at the first bad entry."""
    with engine.connect() as conn:
        rows = conn.execution_options(stream_results=True, yield_per=_BATCH).execute(
            _verify_query()
        )
        last = check_rows(iter(rows), progress)
        if expect is not None:
            anchor_id, anchor_hash = expect
            found = conn.scalar(sa.select(audit_log.c.hash).where(audit_log.c.id == anchor_id))
            if found is None:
                raise ChainError(anchor_id, "the anchored entry is gone (the chain was cut)")
            if found != anchor_hash:
                raise ChainError(anchor_id, "hash differs from the anchor (chain rewritten)")
        unsealed = conn.scalar(sa.select(sa.func.count()).select_from(_unsealed().subquery()))
    return Verified(last[0], last, unsealed or 0)


def export(engine: Engine) -> Iterator[dict[str, Any]]:
    """Every entry in chain order, as a dict of its columns (``at`` as ISO text)."""
    with engine.connect() as conn:
        rows = conn.execution_options(stream_results=True, yield_per=_BATCH).execute(
            sa.select(audit_log).order_by(audit_log.c.id)
        )
        for row in rows:
            item = dict(row._mapping)
            item["at"] = _stamp(row.at)
            yield item
