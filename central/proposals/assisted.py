"""Assisted passes sent to review: the ``assisted_review`` kind (entered by
``central.proposals.referral.refer``).

Ingest refers an assisted pass the policy picks (``[policy] assisted_review_age``,
``assisted_review_repeat``) instead of certifying at once: the result is stored, not
applied, and a proposal is entered in the terminal's name. Approving it (by a person
with the next level's role) certifies the retiree as the pass would have; rejecting it
keeps the reason and certifies nothing.
"""

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from central.proposals.base import Context, Kind, Prepared, ProposalError, digest
from central.store import schema

_r, _res = schema.retirees, schema.results
KIND = "assisted_review"


class AssistedReview(Kind):
    """Certify a retiree from an assisted pass the policy sent to review.

    Entered only by ingest (``refer``); stale when the retiree's certification or status
    changed since, or the result was applied otherwise."""

    name = KIND

    def prepare(self, conn: Connection, payload: dict[str, Any], ctx: Context) -> Prepared:
        raise ProposalError("kind: assisted_review proposals come from terminals' results only")

    def _state(self, conn: Connection, proposal: Any) -> Any:
        p = proposal.payload
        person = conn.execute(
            sa.select(_r.c.status, _r.c.certified_until).where(_r.c.id_number == p["retiree_id"])
        ).first()
        applied = conn.scalar(sa.select(_res.c.applied).where(_res.c.result_id == uuid.UUID(p["result_id"])))
        return person, applied

    def fingerprint(self, conn: Connection, proposal: Any) -> str:
        person, applied = self._state(conn, proposal)
        return digest([person and list(person), bool(applied)])

    def apply(self, conn: Connection, proposal: Any, actor: str, ctx: Context) -> dict[str, Any]:
        p = proposal.payload
        person, _ = self._state(conn, proposal)
        until = dt.date.fromisoformat(p["certified_until"])
        old = person.certified_until
        if old is None or until > old:
            conn.execute(
                _r.update()
                .where(_r.c.id_number == p["retiree_id"])
                .values(certified_until=until, updated_at=ctx.now)
            )
        conn.execute(_res.update().where(_res.c.result_id == uuid.UUID(p["result_id"])).values(applied=True))
        conn.execute(
            schema.events.insert().values(
                at=ctx.now,
                kind="certification_reviewed",
                retiree_id=p["retiree_id"],
                result_id=uuid.UUID(p["result_id"]),
                device_id=p["device_id"],
                actor=actor,
                detail={"certified_until": [old and old.isoformat(), p["certified_until"]]},
            )
        )
        return {"certified_until": max(until, old) if old else until}
