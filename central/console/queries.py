"""What the console shows, read from central's tables: coverage, today's certifications,
the month's payment run, open review items and the drill-down lists.

``scope`` is the communities a coordinator may see (None: every community). A payment
run's figures are read once per run (a run is immutable until recomputed, which stores a
new ``created_at``) and kept in memory.
"""

import datetime as dt
import heapq
import itertools
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from central.console.tables import NEVER, NO_COMMUNITY, coverage_counts, coverage_history
from central.fleet import alerts as fleet_alerts
from central.fleet import health as fleet_health
from central.payments.runs import Decision
from central.store import schema

Scope = frozenset[str] | None
_cc, _r, _res = coverage_counts, schema.retirees, schema.results
_runs, _lines = schema.payment_runs, schema.payment_lines
_COUNTED = (schema.RetireeStatus.ACTIVE.value, schema.RetireeStatus.SUSPENDED.value)


class State(StrEnum):
    """Where a retiree stands on a day, for the drill-down lists."""

    CERTIFIED = "certified"  # certified beyond the reminder window
    DUE = "due"  # certified, expiring within the reminder window
    OVERDUE = "overdue"  # not certified
    HELD = "held"  # held by the latest payment run


@dataclass(frozen=True)
class Coverage:
    """Coverage of one community (or a coordinator's communities, or all: ``TOTAL``)."""

    name: str
    retirees: int = 0
    certified: int = 0
    due: int = 0
    overdue: int = 0
    held: int = 0

    @property
    def certified_pct(self) -> float:
        return 100.0 * self.certified / self.retirees if self.retirees else 0.0

    def plus(self, other: "Coverage", name: str) -> "Coverage":
        return Coverage(
            name,
            self.retirees + other.retirees,
            self.certified + other.certified,
            self.due + other.due,
            self.overdue + other.overdue,
            self.held + other.held,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "retirees": self.retirees,
            "certified": self.certified,
            "certified_pct": round(self.certified_pct, 1),
            "due": self.due,
            "overdue": self.overdue,
            "held": self.held,
        }


def _in_scope(column: Any, scope: Scope) -> Any:
    """``column`` (a community, NULL for none) in ``scope``; plain comparisons, so the
    community indexes serve them."""
    if scope is None:
        return sa.true()
    named = column.in_(sorted(scope - {NO_COMMUNITY}))
    return sa.or_(named, column.is_(None)) if NO_COMMUNITY in scope else named


def _is_community(column: Any, community: str) -> Any:
    return column.is_(None) if community == NO_COMMUNITY else column == community


def coverage_query(as_of: dt.date, reminder_days: int, scope: Scope) -> sa.Select[Any]:
    """The coverage per community from ``coverage_counts`` (the bare SQL the benchmark times)."""
    until = _cc.c.certified_until
    certified = sa.and_(until != NEVER, until >= as_of)
    due = sa.and_(certified, until < as_of + dt.timedelta(days=reminder_days))
    return (
        sa.select(
            _cc.c.community,
            sa.func.sum(_cc.c.n),
            sa.func.sum(sa.case((certified, _cc.c.n), else_=0)),
            sa.func.sum(sa.case((due, _cc.c.n), else_=0)),
        )
        .where(_cc.c.status.in_(_COUNTED), _in_scope(_cc.c.community, scope))
        .group_by(_cc.c.community)
        .having(sa.func.sum(_cc.c.n) > 0)
    )


def coverage(conn: Connection, as_of: dt.date, reminder_days: int, scope: Scope) -> list[Coverage]:
    """One row per community in ``scope`` (lowest certified share first), then ``TOTAL``."""
    held = held_per_community(conn)
    rows = [
        Coverage(
            name, int(n), int(ok or 0), int(soon or 0), int(n) - int(ok or 0), held.get(name, 0)
        )
        for name, n, ok, soon in conn.execute(coverage_query(as_of, reminder_days, scope))
    ]
    rows.sort(key=lambda r: (r.certified_pct, r.name))
    total = Coverage("TOTAL")
    for row in rows:
        total = total.plus(row, "TOTAL")
    return [*rows, total]


def per_coordinator(
    rows: list[Coverage], coordinators: dict[str, frozenset[str]]
) -> list[Coverage]:
    """Coverage summed over each coordinator's communities."""
    by_name = {r.name: r for r in rows}
    out = []
    for staff_id, communities in sorted(coordinators.items()):
        total = Coverage(staff_id)
        for name in communities:
            if name in by_name:
                total = total.plus(by_name[name], staff_id)
        out.append(total)
    return out


def record_history(conn: Connection, day: dt.date, rows: list[Coverage]) -> None:
    """Keep ``day``'s coverage per community for the trend (once a day; later calls keep
    the first)."""
    h = coverage_history
    if conn.execute(sa.select(h.c.day).where(h.c.day == day).limit(1)).first():
        return
    values = [
        {
            "day": day,
            "community": r.name,
            "retirees": r.retirees,
            "certified": r.certified,
            "due": r.due,
            "overdue": r.overdue,
        }
        for r in rows
        if r.name != "TOTAL"
    ]
    if values:
        conn.execute(h.insert(), values)


def trend(conn: Connection, months: int, scope: Scope) -> list[dict[str, Any]]:
    """Certified share at the last recorded day of each of the latest ``months`` months."""
    h = coverage_history
    days = conn.execute(sa.select(h.c.day).distinct().order_by(h.c.day.desc())).scalars()
    last: dict[str, dt.date] = {}
    for day in days:
        last.setdefault(f"{day:%Y-%m}", day)
        if len(last) > months:
            break
    picked = sorted(list(last.values())[:months])
    if not picked:
        return []
    rows = conn.execute(
        sa.select(h.c.day, sa.func.sum(h.c.retirees), sa.func.sum(h.c.certified))
        .where(h.c.day.in_(picked), _in_scope(h.c.community, scope))
        .group_by(h.c.day)
        .order_by(h.c.day)
    ).all()
    return [
        {
            "month": f"{day:%Y-%m}",
            "day": day.isoformat(),
            "retirees": int(n),
            "certified": int(ok),
            "certified_pct": round(100.0 * int(ok) / int(n), 1) if n else 0.0,
        }
        for day, n, ok in rows
    ]


def _day_start(day: dt.date, timezone: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), zoneinfo.ZoneInfo(timezone))


def today(conn: Connection, day: dt.date, timezone: str, scope: Scope) -> list[dict[str, Any]]:
    """Results received on ``day`` (in ``timezone``) by channel, method and decision."""
    start = _day_start(day, timezone)
    query = (
        sa.select(_res.c.channel, _res.c.method, _res.c.decision, sa.func.count())
        .where(_res.c.received_at >= start, _res.c.received_at < start + dt.timedelta(days=1))
        .group_by(_res.c.channel, _res.c.method, _res.c.decision)
        .order_by(_res.c.channel, _res.c.method, _res.c.decision)
    )
    if scope is not None:
        query = query.join_from(_res, _r, _r.c.id_number == _res.c.retiree_id).where(
            _in_scope(_r.c.community, scope)
        )
    return [
        {"channel": c, "method": m, "decision": d, "count": int(n)}
        for c, m, d, n in conn.execute(query)
    ]


@dataclass(frozen=True)
class RunFigures:
    """The month's payment run: counts and sums per decision, arrears, held per community."""

    period: str
    status: str
    counts: dict[str, int]
    sums_cents: dict[str, int]
    arrears_cents: int
    held: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "status": self.status,
            "counts": self.counts,
            "sums_cents": self.sums_cents,
            "arrears_cents": self.arrears_cents,
        }


def latest_run(conn: Connection, period: str | None = None) -> Any:
    """The ``payment_runs`` row of ``period`` (default: the latest), or None."""
    query = sa.select(_runs).order_by(_runs.c.period.desc()).limit(1)
    if period is not None:
        query = sa.select(_runs).where(_runs.c.period == period)
    return conn.execute(query).first()


_figures: dict[tuple[str, int, dt.datetime], RunFigures] = {}


def run_figures(conn: Connection, run: Any) -> RunFigures:
    """Counts and sums per decision of ``run`` (stored lines grouped; the implied pay lines
    from the run's summary), and its hold lines per community; read once per run."""
    key = (str(conn.engine.url), int(run.id), run.created_at)
    if key in _figures:
        return _figures[key]
    rows = conn.execute(
        sa.select(
            _lines.c.decision,
            sa.func.count(),
            sa.func.sum(_lines.c.payable_cents),
            sa.func.sum(_lines.c.amount_cents),
        )
        .where(_lines.c.run_id == run.id)
        .group_by(_lines.c.decision)
    ).all()
    summary = run.summary or {}
    counts = {str(k): int(v) for k, v in summary.get("decisions", {}).items()}
    sums: dict[str, int] = {}
    paid_elsewhere = 0
    for decision, _n, payable, amount in rows:
        if decision in (Decision.HOLD.value, Decision.STOP.value):
            sums[decision] = int(amount or 0)  # what was not paid
        else:
            sums[decision] = int(payable or 0)
            paid_elsewhere += int(payable or 0)
    sums[Decision.PAY.value] = int(summary.get("payable_cents", 0)) - paid_elsewhere
    community = sa.func.coalesce(_r.c.community, sa.literal_column(f"'{NO_COMMUNITY}'"))
    held = {
        name: int(n)
        for name, n in conn.execute(
            sa.select(community, sa.func.count())
            .select_from(_lines.join(_r, _r.c.id_number == _lines.c.retiree_id))
            .where(_lines.c.run_id == run.id, _lines.c.decision == Decision.HOLD.value)
            .group_by(community)
        )
    }
    figures = RunFigures(
        run.period,
        run.status,
        counts,
        sums,
        int(summary.get("arrears_cents", 0)),
        held,
    )
    if len(_figures) > 32:
        _figures.clear()
    _figures[key] = figures
    return figures


def held_per_community(conn: Connection) -> dict[str, int]:
    """Hold lines of the latest payment run per community (empty: no run yet)."""
    run = latest_run(conn)
    return {} if run is None else run_figures(conn, run).held


def retirees_query(
    state: State | None,
    community: str | None,
    as_of: dt.date,
    reminder_days: int,
    scope: Scope,
    run_id: int | None,
    after: str | None = None,
) -> sa.Select[Any]:
    """The drill-down list's query: retirees in ``scope`` (and ``community``) in ``state``,
    by ID number after ``after``. The held are read from the run's lines in their
    (run, retiree) index order, joined to the roster."""
    until = _r.c.certified_until
    query = sa.select(
        _r.c.id_number,
        _r.c.name,
        sa.func.coalesce(_r.c.community, NO_COMMUNITY).label("community"),
        _r.c.status,
        until.label("certified_until"),
    ).where(_r.c.status.in_(_COUNTED), _in_scope(_r.c.community, scope))
    if community is not None:
        query = query.where(_is_community(_r.c.community, community))
    window = as_of + dt.timedelta(days=reminder_days)
    if state is State.CERTIFIED:
        query = query.where(until >= window)
    elif state is State.DUE:
        query = query.where(until >= as_of, until < window)
    elif state is State.OVERDUE:
        query = query.where(sa.or_(until.is_(None), until < as_of))
    elif state is State.HELD:
        query = query.join_from(_lines, _r, _r.c.id_number == _lines.c.retiree_id).where(
            _lines.c.run_id == (run_id if run_id is not None else -1),
            _lines.c.decision == Decision.HOLD.value,
        )
        if after:
            query = query.where(_lines.c.retiree_id > after)
        return query.order_by(_lines.c.retiree_id)
    if after:
        query = query.where(_r.c.id_number > after)
    return query.order_by(_r.c.id_number)


def retirees_page(
    conn: Connection, query: sa.Select[Any] | list[sa.Select[Any]], limit: int
) -> list[dict[str, Any]]:
    """One page (``limit`` rows) of ``retirees_query``, or of several (one per community,
    each read in its index order) merged by ID number."""
    parts = query if isinstance(query, list) else [query]
    pages = [[dict(row._mapping) for row in conn.execute(q.limit(limit))] for q in parts]
    merged = heapq.merge(*pages, key=lambda row: row["id_number"])
    return list(itertools.islice(merged, limit))


def stream(engine: Engine, query: sa.Select[Any], limit: int) -> Iterator[dict[str, Any]]:
    """Every row of ``query`` (up to ``limit``), read in batches."""
    with engine.connect() as conn:
        result = conn.execute(query.limit(limit), execution_options={"yield_per": 5000})
        for row in result:
            yield dict(row._mapping)


def certifications_query(
    day: dt.date, timezone: str, scope: Scope, channel: str | None, method: str | None
) -> sa.Select[Any]:
    """Results received on ``day`` (in ``timezone``), newest first (today's drill-down)."""
    start = _day_start(day, timezone)
    query = (
        sa.select(
            _res.c.received_at,
            _res.c.retiree_id,
            _res.c.device_id,
            _res.c.channel,
            _res.c.method,
            _res.c.decision,
            _res.c.applied,
        )
        .where(_res.c.received_at >= start, _res.c.received_at < start + dt.timedelta(days=1))
        .order_by(_res.c.received_at.desc(), _res.c.device_id, _res.c.seq.desc())
    )
    if channel:
        query = query.where(_res.c.channel == channel)
    if method:
        query = query.where(_res.c.method == method)
    if scope is not None:
        query = query.join_from(_res, _r, _r.c.id_number == _res.c.retiree_id).where(
            _in_scope(_r.c.community, scope)
        )
    return query


def fleet(engine: Engine, now: dt.datetime, silent_after_s: float) -> dict[str, Any]:
    """Terminals per state (online, offline, stopped, silent, unknown) and the open alerts
    (``central.fleet``)."""
    states: dict[str, int] = {}
    for device in fleet_health.load_states(engine):
        name = device.state(now, silent_after_s)
        states[name] = states.get(name, 0) + 1
    raised = fleet_alerts.list_alerts(engine, open_only=True, limit=20)
    return {
        "terminals": states,
        "open_alerts": [
            {k: a[k] for k in ("id", "rule", "subject", "reason", "raised_at")} for a in raised
        ],
    }
