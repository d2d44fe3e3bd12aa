"""Read-side queries for the CLI and the console: retirees, results, quarantine."""

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from central.payments import runs
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
    """One retiree with the latest run's decision for them, holds, latest results and events
    (None when unknown)."""
    r = schema.retirees
    with engine.connect() as conn:
        row = conn.execute(sa.select(r).where(r.c.id_number == id_number)).first()
        if row is None:
            return None
        out = dict(row._mapping)
        out["payment"] = runs.latest_line(conn, id_number)
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


def list_results(
    engine: Engine,
    *,
    device_id: str | None = None,
    retiree_id: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Applied results, newest first."""
    res = schema.results
    query = sa.select(
        res.c.result_id,
        res.c.device_id,
        res.c.seq,
        res.c.retiree_id,
        res.c.method,
        res.c.decision,
        res.c.device_time,
        res.c.received_at,
        res.c.applied,
    ).order_by(res.c.received_at.desc(), res.c.device_id, res.c.seq.desc())
    if device_id:
        query = query.where(res.c.device_id == device_id)
    if retiree_id:
        query = query.where(res.c.retiree_id == retiree_id)
    with engine.connect() as conn:
        return _rows(conn.execute(query.limit(limit)))


def list_quarantine(
    engine: Engine, *, reason: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Refused messages, newest first (payload head left out)."""
    q = schema.quarantine
    query = sa.select(
        q.c.id,
        q.c.received_at,
        q.c.device_id,
        q.c.reason,
        q.c.acked,
        q.c.result_id,
        q.c.detail,
        q.c.topic,
        q.c.payload_size,
        q.c.payload_sha256,
    ).order_by(q.c.id.desc())
    if reason:
        query = query.where(q.c.reason == reason)
    with engine.connect() as conn:
        return _rows(conn.execute(query.limit(limit)))


def count_by_reason(engine: Engine) -> dict[str, int]:
    """How many quarantined messages per reason code."""
    q = schema.quarantine
    with engine.connect() as conn:
        rows = conn.execute(sa.select(q.c.reason, sa.func.count()).group_by(q.c.reason))
        return {reason: n for reason, n in rows}
