"""Ingest's way into the proposals: refer an assisted pass to review (see
``central.proposals.assisted``)."""

import datetime as dt

from sqlalchemy.engine import Connection

from central.proposals import workflow
from central.proposals.assisted import KIND
from central.proposals.base import Change, Prepared
from central.staff.identity import Actor


def refer(
    conn: Connection,
    *,
    result_id: str,
    retiree_id: str,
    device_id: str,
    staff_id: str,
    old: dt.date | None,
    until: dt.date,
    why: str,
    levels: int,
    now: dt.datetime,
) -> int:
    """Enter an ``assisted_review`` proposal for a stored, unapplied pass, in the terminal's
    name (in ingest's transaction); its id."""
    terminal = Actor(f"device:{device_id}", frozenset(), via="mqtt")
    prepared = Prepared(
        {
            "result_id": result_id,
            "retiree_id": retiree_id,
            "device_id": device_id,
            "staff_id": staff_id,
            "certified_until": until.isoformat(),
            "why": why,
        },
        retiree_id,
        f"assisted pass for {retiree_id} by {staff_id} at {device_id}: {why}",
        [
            Change(
                0,
                retiree_id,
                "changed",
                {"certified_until": old and old.isoformat()},
                {"certified_until": until.isoformat()},
            )
        ],
    )
    row = workflow.enter(conn, terminal, KIND, prepared, levels, "terminal", "refer", now)
    return int(row.id)
