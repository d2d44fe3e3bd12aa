"""Assisted passes ingest sent to review, and the decision on each: the ``assisted_review``
kind.

Ingest stores an assisted pass the policy picks (``[policy] assisted_review_age``,
``assisted_review_repeat``) unapplied, with a ``certification_referred`` event saying
why and until when it would certify. ``referred`` lists those waiting for a decision; a
staff member proposes one (``certify`` or ``refuse``, with a reason) and, once approved
by someone else, ``certify`` certifies the retiree as the pass would have, ``refuse``
records the refusal and certifies nothing.
"""

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from central.proposals.base import (
    Change,
    Context,
    Kind,
    PayloadField,
    Prepared,
    ProposalError,
    digest,
    pick,
    text,
)
from central.proposals.tables import proposals
from central.store import schema

_r, _res, _ev = schema.retirees, schema.results, schema.events
KIND = "assisted_review"
_TAKEN = ("open", "applying", "applied")  # a proposal in one of these decides the result


def _uuid(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ProposalError(f"result_id: {value!r} is not a result id (a UUID)") from None


def _referral(conn: Connection, result_id: uuid.UUID) -> Any:
    """The result and its referral event (``ProposalError`` when it was not referred)."""
    row = conn.execute(
        sa.select(
            _res.c.result_id,
            _res.c.retiree_id,
            _res.c.device_id,
            _res.c.evidence,
            _res.c.applied,
            _ev.c.detail,
        )
        .join(
            _ev,
            sa.and_(_ev.c.result_id == _res.c.result_id, _ev.c.kind == "certification_referred"),
        )
        .where(_res.c.result_id == result_id)
    ).first()
    if row is None:
        raise ProposalError(f"result_id: {result_id} is no assisted pass referred for review")
    return row


def _taken(conn: Connection, targets: list[str]) -> dict[str, int]:
    """Which of these results a proposal already decides (or waits to): result -> proposal."""
    rows = conn.execute(
        sa.select(proposals.c.target, proposals.c.id).where(
            proposals.c.kind == KIND,
            proposals.c.status.in_(_TAKEN),
            proposals.c.target.in_(targets),
        )
    )
    return {r.target: r.id for r in rows}


class AssistedReview(Kind):
    """Decide an assisted pass ingest referred: certify the retiree from it, or refuse it.

    Payload: ``result_id``, ``decision`` (``certify`` or ``refuse``), ``reason``. Stale
    when the retiree's certification or status changed since, or the result was applied."""

    name = KIND
    fields = (
        PayloadField(
            "result_id", "Result", help="the referred pass's id (the Assisted page)", max_length=36
        ),
        PayloadField("decision", "Decision", "select", choices=pick("certify", "refuse")),
        PayloadField("reason", "Reason", "textarea", max_length=500),
    )

    def prepare(self, conn: Connection, payload: dict[str, Any], ctx: Context) -> Prepared:
        result_id = _uuid(payload.get("result_id"))
        found = _referral(conn, result_id)
        if found.applied:
            raise ProposalError(f"result_id: {result_id} is applied already")
        if taken := _taken(conn, [str(result_id)]):
            raise ProposalError(
                f"result_id: {result_id} is decided in proposal {taken[str(result_id)]}"
            )
        decision = payload.get("decision")
        if decision not in ("certify", "refuse"):
            raise ProposalError("decision: certify or refuse")
        reason = text(payload, "reason", 500, 1)
        staff = (found.evidence.get("assisted") or {}).get("staff_id", "?")
        until = found.detail["referred_until"]
        person = conn.execute(
            sa.select(_r.c.certified_until).where(_r.c.id_number == found.retiree_id)
        ).one()
        before = person.certified_until and person.certified_until.isoformat()
        return Prepared(
            {
                "result_id": str(result_id),
                "retiree_id": found.retiree_id,
                "device_id": found.device_id,
                "staff_id": staff,
                "decision": decision,
                "reason": reason,
                "why": found.detail["referred"],
                "certified_until": until,
            },
            str(result_id),
            f"{decision} the assisted pass of {found.retiree_id} by {staff} at "
            f"{found.device_id} (referred: {found.detail['referred']}): {reason}",
            [
                Change(
                    0,
                    found.retiree_id,
                    "changed",
                    {"certified_until": before},
                    {"certified_until": until},
                )
            ]
            if decision == "certify"
            else [],
        )

    def _state(self, conn: Connection, proposal: Any) -> tuple[Any, bool]:
        p = proposal.payload
        person = conn.execute(
            sa.select(_r.c.status, _r.c.certified_until).where(_r.c.id_number == p["retiree_id"])
        ).one()
        applied = conn.scalar(
            sa.select(_res.c.applied).where(_res.c.result_id == _uuid(p["result_id"]))
        )
        return person, bool(applied)

    def fingerprint(self, conn: Connection, proposal: Any) -> str:
        person, applied = self._state(conn, proposal)
        return digest([list(person), applied])

    def apply(self, conn: Connection, proposal: Any, actor: str, ctx: Context) -> dict[str, Any]:
        p = proposal.payload
        person, _ = self._state(conn, proposal)
        old, until = person.certified_until, dt.date.fromisoformat(p["certified_until"])
        event = {
            "at": ctx.now,
            "retiree_id": p["retiree_id"],
            "result_id": _uuid(p["result_id"]),
            "device_id": p["device_id"],
            "actor": actor,
        }
        if p["decision"] == "refuse":
            conn.execute(
                _ev.insert().values(
                    kind="certification_refused",
                    detail={"reason": p["reason"], "proposal": proposal.id},
                    **event,
                )
            )
            return {"certified_until": old and old.isoformat()}
        new = until if old is None or until > old else old
        conn.execute(
            _r.update()
            .where(_r.c.id_number == p["retiree_id"])
            .values(certified_until=new, updated_at=ctx.now)
        )
        conn.execute(
            _res.update().where(_res.c.result_id == _uuid(p["result_id"])).values(applied=True)
        )
        conn.execute(
            _ev.insert().values(
                kind="certification_reviewed",
                detail={
                    "certified_until": [old and old.isoformat(), new.isoformat()],
                    "reason": p["reason"],
                    "proposal": proposal.id,
                },
                **event,
            )
        )
        return {"certified_until": new.isoformat()}


def referred(engine: Engine, limit: int = 100) -> list[dict[str, Any]]:
    """Assisted passes referred for review that no proposal decides yet, oldest first: the
    review queue (result, retiree, terminal, staff member, why, until when it would
    certify)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                _res.c.result_id,
                _res.c.retiree_id,
                _res.c.device_id,
                _res.c.device_time,
                _res.c.evidence,
                _ev.c.detail,
            )
            .join(
                _ev,
                sa.and_(
                    _ev.c.result_id == _res.c.result_id, _ev.c.kind == "certification_referred"
                ),
            )
            .where(~_res.c.applied)
            .order_by(_ev.c.id)
        ).all()
        taken = _taken(conn, [str(r.result_id) for r in rows]) if rows else {}
    return [
        {
            "result_id": str(r.result_id),
            "retiree_id": r.retiree_id,
            "device_id": r.device_id,
            "device_time": r.device_time,
            "staff_id": (r.evidence.get("assisted") or {}).get("staff_id"),
            "why": r.detail["referred"],
            "certified_until": r.detail["referred_until"],
        }
        for r in rows
        if str(r.result_id) not in taken
    ][:limit]
