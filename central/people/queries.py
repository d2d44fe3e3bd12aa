"""Read-side queries for the CLI and the console: retirees and what happened to them."""

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from central.store import schema


def _rows(result: sa.CursorResult[Any]) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in result]


def list_retirees(
    engine: Engine,
    *,
    status: str | None = None,
    due_before: dt.date | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Retirees by ID number, with status, ``certified_until`` and open holds."""
    r, h = schema.retirees, schema.holds
    open_holds = (
        sa.select(sa.func.count())
        .where(h.c.retiree_id == r.c.id_number, h.c.released_at.is_(None))
        .scalar_subquery()
    )
    query = sa.select(
        r.c.id_number,
        r.c.name,
        r.c.community,
        r.c.status,
        r.c.certified_until,
        open_holds.label("open_holds"),
    ).order_by(r.c.id_number)
    if status:
        query = query.where(r.c.status == status)
    if due_before:
        query = query.where(sa.or_(r.c.certified_until.is_(None), r.c.certified_until < due_before))
    with engine.connect() as conn:
        return _rows(conn.execute(query.limit(limit)))


def get_retiree(engine: Engine, id_number: str, history: int = 10) -> dict[str, Any] | None:
    """One retiree with their holds, latest results and events (None when unknown); what the
    latest payment run decided for them is ``central.payments.runs.latest_line``."""
    r = schema.retirees
    with engine.connect() as conn:
        row = conn.execute(sa.select(r).where(r.c.id_number == id_number)).first()
        if row is None:
            return None
        out = dict(row._mapping)
        h, res, ev = schema.holds, schema.results, schema.events
        out["holds"] = _rows(
            conn.execute(sa.select(h).where(h.c.retiree_id == id_number).order_by(h.c.since))
        )
        out["results"] = _rows(
            conn.execute(
                sa.select(
                    res.c.result_id,
                    res.c.device_id,
                    res.c.seq,
                    res.c.method,
                    res.c.decision,
                    res.c.device_time,
                    res.c.received_at,
                    res.c.applied,
                )
                .where(res.c.retiree_id == id_number)
                .order_by(res.c.received_at.desc())
                .limit(history)
            )
        )
        out["events"] = _rows(
            conn.execute(
                sa.select(ev.c.at, ev.c.kind, ev.c.actor, ev.c.detail)
                .where(ev.c.retiree_id == id_number)
                .order_by(ev.c.id.desc())
                .limit(history)
            )
        )
    return out
