"""Read-side queries for the CLI and the console: applied results and quarantined messages."""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from central.store import schema


def _rows(result: sa.CursorResult[Any]) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in result]


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
