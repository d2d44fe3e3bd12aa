"""Who certifies by assisting: the share of assisted results per staff member and per
terminal, and how many of them the policy referred to review.

A staff member who assists far more often than their colleagues, or a terminal where
most passes are assisted, is where to look first for passes given without the retiree.
"""

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from central.store import schema
from protocol.messages import Decision, Method

_res = schema.results


@dataclass(frozen=True)
class Report:
    """Assisted results since a date: per terminal and per staff member."""

    since: dt.datetime
    terminals: list[dict[str, Any]]
    staff: list[dict[str, Any]]


def _pct(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def report(engine: Engine, since: dt.datetime) -> Report:
    """Results received since ``since``: per terminal, how many and how many assisted (and
    referred: assisted passes stored unapplied); per staff member named in assisted
    results, how many, at how many terminals, their share of all assisted results."""
    assisted = _res.c.method == Method.ASSISTED.value
    referred = sa.and_(assisted, _res.c.decision == Decision.PASS.value, ~_res.c.applied)
    count_if = lambda cond: sa.func.sum(sa.case((cond, 1), else_=0))  # noqa: E731
    recent = _res.c.received_at >= since
    with engine.connect() as conn:
        per_terminal = conn.execute(
            sa.select(
                _res.c.device_id,
                sa.func.count().label("results"),
                count_if(assisted).label("assisted"),
                count_if(referred).label("referred"),
            )
            .where(recent)
            .group_by(_res.c.device_id)
            .order_by(_res.c.device_id)
        ).all()
        staff_id = _res.c.evidence["assisted"]["staff_id"].as_string()
        per_staff = conn.execute(
            sa.select(
                staff_id.label("staff_id"),
                sa.func.count().label("assisted"),
                sa.func.count(sa.distinct(_res.c.device_id)).label("terminals"),
                count_if(referred).label("referred"),
            )
            .where(recent, assisted)
            .group_by(staff_id)
            .order_by(sa.func.count().desc(), staff_id)
        ).all()
    total = sum(int(r.assisted) for r in per_staff)
    return Report(
        since,
        [
            {
                "device_id": r.device_id,
                "results": int(r.results),
                "assisted": int(r.assisted),
                "assisted_pct": _pct(int(r.assisted), int(r.results)),
                "referred": int(r.referred),
            }
            for r in per_terminal
        ],
        [
            {
                "staff_id": r.staff_id,
                "assisted": int(r.assisted),
                "share_pct": _pct(int(r.assisted), total),
                "terminals": int(r.terminals),
                "referred": int(r.referred),
            }
            for r in per_staff
        ],
    )
