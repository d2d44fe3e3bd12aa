"""What the dashboard and the audit pages show, computed from ``central.console.queries``
and the staff room's audit chain for one signed-in person."""

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from central import proposals
from central.console import access, identity, queries, reviews
from central.console.context import Context
from central.staff import audit
from central.staff.identity import Actor
from central.staff.tables import audit_log


def dashboard(ctx: Context, actor: Actor, as_of: dt.date) -> dict[str, Any]:
    """Everything the dashboard shows, for ``actor`` on ``as_of`` (at most
    ``[console] dashboard_cache_s`` old)."""
    scope = access.scope(actor)
    today = ctx.today()
    if as_of == today and today not in ctx.recorded:
        with ctx.recording:
            if today not in ctx.recorded:
                try:
                    with ctx.engine.begin() as conn:
                        rows = queries.coverage(conn, today, ctx.policy.reminder_days, None)
                        queries.record_history(conn, today, rows)
                except IntegrityError:
                    pass  # another console process recorded today first
                ctx.recorded.add(today)
    key = (
        scope,
        actor.staff_id if scope is not None else None,
        as_of,
        access.allowed(actor, "payments"),
        access.allowed(actor, "reviews"),
    )
    data = dict(ctx.fresh.get(key, lambda: _dashboard(ctx, actor, as_of)))
    data["proposals_waiting"] = (
        len(proposals.list_for(ctx.engine, actor, 1000))
        if access.allowed(actor, "proposals")
        else None
    )
    return data


def _dashboard(ctx: Context, actor: Actor, as_of: dt.date) -> dict[str, Any]:
    scope = access.scope(actor)
    reminder = ctx.policy.reminder_days
    with ctx.reader.connect() as conn:
        rows = queries.coverage(conn, as_of, reminder, scope)
        known = identity.coordinators(ctx.engine)
        if scope is not None:
            known = {k: v for k, v in known.items() if k == actor.staff_id}
        data: dict[str, Any] = {
            "as_of": as_of.isoformat(),
            "reminder_days": reminder,
            "coverage": [r.as_json() for r in rows],
            "per_coordinator": [r.as_json() for r in queries.per_coordinator(rows, known)],
            "trend": queries.trend(conn, 12, scope),
            "today": queries.today(conn, as_of, ctx.timezone, scope),
            "payment_run": None,
            "open_reviews": None,
        }
        if access.allowed(actor, "payments"):
            run = queries.latest_run(conn)
            if run is not None:
                data["payment_run"] = queries.run_figures(conn, run).as_json()
        if access.allowed(actor, "reviews"):
            data["open_reviews"] = reviews.counts(conn)
    data["fleet"] = (
        queries.fleet(ctx.reader, dt.datetime.now(dt.UTC), ctx.silent_after_s)
        if access.allowed(actor, "fleet")
        else None
    )
    return data


def audit_rows(conn: Any, after: int, limit: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(audit_log).where(audit_log.c.id > after).order_by(audit_log.c.id).limit(limit)
    )
    return [dict(r._mapping) for r in rows]


def verify(ctx: Context) -> dict[str, Any]:
    try:
        found = audit.verify(ctx.reader)
    except audit.ChainError as exc:
        return {"ok": False, "entry_id": exc.entry_id, "problem": exc.problem}
    return {
        "ok": True,
        "entries": found.entries,
        "head": {"id": found.head[0], "hash": found.head[1]},
        "unsealed_events": found.unsealed_events,
    }
