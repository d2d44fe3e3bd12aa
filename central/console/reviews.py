"""Review queues: items staff decide on, each decision with a reason, in the audit chain.

Queues: ``quarantine`` (messages central refused), ``fraud`` (open fraud flags),
``referred`` (results the terminal referred to staff), ``registry`` (registry records that
match no retiree, or one with another birth date). A decision never certifies anyone nor
moves money: it records what staff found (and closes a fraud flag as cleared or
confirmed); a change to eligibility or money is a proposal.
"""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from central.console.tables import review_decisions
from central.staff import audit
from central.staff.identity import Actor
from central.store import schema
from common.errors import LifecertError

_d = review_decisions
MAX_REASON = 500


class ReviewError(LifecertError, ValueError):
    """A decision cannot be taken; ``field`` names the input at fault."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.field, self.status = field, status


@dataclass(frozen=True)
class Queue:
    """One review queue: its items (open ones first) and the decisions it takes."""

    name: str
    title: str
    decisions: tuple[str, ...]
    items: Callable[[], sa.Select[Any]]  # columns: item (str), at, summary


def _open(queue: str, item: Any) -> Any:
    return ~sa.exists().where(_d.c.queue == queue, _d.c.item == sa.cast(item, sa.String))


def _quarantine() -> sa.Select[Any]:
    q = schema.quarantine
    return (
        sa.select(
            sa.cast(q.c.id, sa.String).label("item"),
            q.c.received_at.label("at"),
            (sa.func.coalesce(q.c.device_id, "?") + ": " + q.c.reason + ": " + q.c.detail).label(
                "summary"
            ),
        )
        .where(_open("quarantine", q.c.id))
        .order_by(q.c.id.desc())
    )


def _fraud() -> sa.Select[Any]:
    f = schema.fraud_flags
    return (
        sa.select(
            sa.cast(f.c.id, sa.String).label("item"),
            f.c.created_at.label("at"),
            (
                f.c.kind
                + ": "
                + f.c.retiree_id
                + sa.func.coalesce(" / " + f.c.other_retiree_id, "")
            ).label("summary"),
        )
        .where(f.c.status == "open")
        .order_by(f.c.id.desc())
    )


def _referred() -> sa.Select[Any]:
    r = schema.results
    return (
        sa.select(
            sa.cast(r.c.result_id, sa.String).label("item"),
            r.c.received_at.label("at"),
            (r.c.retiree_id + " at " + r.c.device_id + " (" + r.c.method + ")").label("summary"),
        )
        .where(r.c.decision == "refer", _open("referred", r.c.result_id))
        .order_by(r.c.received_at.desc())
    )


def _registry() -> sa.Select[Any]:
    g = schema.registry_records
    return (
        sa.select(
            sa.cast(g.c.id, sa.String).label("item"),
            g.c.imported_at.label("at"),
            (
                g.c.kind
                + " record for "
                + g.c.id_number
                + " born "
                + sa.cast(g.c.birth_date, sa.String)
                + ": no retiree matches"
            ).label("summary"),
        )
        .where(g.c.retiree_id.is_(None), _open("registry", g.c.id))
        .order_by(g.c.id.desc())
    )


QUEUES: dict[str, Queue] = {
    q.name: q
    for q in (
        Queue("quarantine", "Quarantined results", ("noted", "escalate"), _quarantine),
        Queue("fraud", "Fraud flags", ("cleared", "confirmed"), _fraud),
        Queue("referred", "Referred to staff", ("invite", "noted"), _referred),
        Queue("registry", "Registry mismatches", ("not_ours", "correct_roster"), _registry),
    )
}


def counts(conn: Connection) -> dict[str, int]:
    """Open items per queue."""
    out = {}
    for name, queue in QUEUES.items():
        sub = queue.items().order_by(None).subquery()
        out[name] = int(conn.execute(sa.select(sa.func.count()).select_from(sub)).scalar_one())
    return out


def items(conn: Connection, queue: str, limit: int) -> list[dict[str, Any]]:
    """The open items of ``queue``, newest first."""
    return [dict(r._mapping) for r in conn.execute(_queue(queue).items().limit(limit))]


def _queue(name: str) -> Queue:
    if name not in QUEUES:
        raise ReviewError("queue", f"no queue {name!r}: use one of {', '.join(QUEUES)}", 404)
    return QUEUES[name]


def decide(
    engine: Engine, queue: str, item: str, decision: str, reason: str, actor: Actor
) -> dict[str, Any]:
    """Record ``decision`` on an open item of ``queue`` with ``reason``, and an event."""
    found = _queue(queue)
    if decision not in found.decisions:
        raise ReviewError("decision", f"decision must be one of {', '.join(found.decisions)}")
    reason = reason.strip()
    if len(reason) < 3 or len(reason) > MAX_REASON or not reason.isprintable():
        raise ReviewError(
            "reason", f"give a reason of 3 to {MAX_REASON} printable characters (one line)"
        )
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        sub = found.items().order_by(None).subquery()
        if conn.execute(sa.select(sub.c.item).where(sub.c.item == item)).first() is None:
            raise ReviewError("item", f"{queue} item {item!r} is not open: reload the queue", 409)
        conn.execute(
            _d.insert().values(
                queue=queue,
                item=item,
                decision=decision,
                reason=reason,
                staff_id=actor.staff_id,
                at=now,
            )
        )
        if queue == "fraud":
            conn.execute(
                schema.fraud_flags.update()
                .where(schema.fraud_flags.c.id == int(item))
                .values(status=decision)
            )
        audit.record(
            conn,
            actor,
            "review.decide",
            f"{queue}:{item}",
            None,
            {"decision": decision, "reason": reason},
            at=now,
        )
    return {"queue": queue, "item": item, "decision": decision, "reason": reason}
