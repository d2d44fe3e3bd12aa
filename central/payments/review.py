"""Reading a stored run for people: what changed since the month before (``diff``) and
what it decided for one retiree, and why (``explain``)."""

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from central.certification.settings import Policy
from central.payments.period import Period
from central.payments.runs import Decision, Reason, RunError, get_run, run_lines
from central.store import schema

_r, _runs, _lines, _v = (
    schema.retirees,
    schema.payment_runs,
    schema.payment_lines,
    schema.roster_versions,
)


@dataclass(frozen=True)
class Diff:
    """How a run differs from the previous month's."""

    period: str
    previous: str | None
    transitions: dict[str, int]
    changes: list[dict[str, Any]] = field(default_factory=list)


def _changed_between(old: Any, new: Any) -> sa.CompoundSelect[Any] | None:
    """The retirees whose line can differ between runs ``old`` and ``new`` (None: any).

    A pay line is the roster at the run's revision, so beside the stored lines of both
    runs only retirees whose payable columns changed (or who came or went) between the two
    revisions can differ: the rest were paid the same in both.
    """
    if old.roster_revision is None or new.roster_revision is None:
        return None
    since, until = old.roster_revision, new.roster_revision
    return sa.union(
        sa.select(_lines.c.retiree_id).where(_lines.c.run_id.in_([old.id, new.id])),
        sa.select(_r.c.id_number).where(_r.c.roster_rev > since),
        sa.select(_v.c.retiree_id).where(_v.c.valid_to > since, _v.c.valid_from <= until),
    )


def diff(engine: Engine, period: Period, *, limit: int = 100) -> Diff:
    """Transitions (``old -> new`` decision/reason) from the previous month's run."""
    with engine.connect() as conn:
        now_run = get_run(conn, period)
        previous = period.shift(-1)  # a stored run's month: never out of the calendar
        prev = conn.execute(sa.select(_runs).where(_runs.c.period == str(previous))).first()
        if prev is None:
            return Diff(str(period), None, {})
        ids: sa.Select[Any] | None = None
        if (maybe := _changed_between(prev, now_run)) is not None:
            cte = maybe.cte("maybe").prefix_with("MATERIALIZED")
            ids = sa.select(cte.c.retiree_id)
        new = run_lines(now_run, retiree_ids=ids).element.cte("new").prefix_with("MATERIALIZED")
        old = run_lines(prev, retiree_ids=ids).element.cte("old").prefix_with("MATERIALIZED")
        label_new = new.c.decision + sa.func.coalesce(sa.literal(":") + new.c.reason, "")
        label_old = old.c.decision + sa.func.coalesce(sa.literal(":") + old.c.reason, "")
        changed = sa.select(
            new.c.retiree_id,
            sa.func.coalesce(label_old, "(none)").label("old"),
            label_new.label("new"),
            old.c.payable_cents.label("old_payable_cents"),
            new.c.payable_cents.label("new_payable_cents"),
        ).where(
            sa.or_(
                old.c.retiree_id.is_(None),
                label_old != label_new,
                old.c.payable_cents != new.c.payable_cents,
            )
        )
        changed = changed.select_from(new.outerjoin(old, old.c.retiree_id == new.c.retiree_id))
        gone = (
            sa.select(old.c.retiree_id, label_old, sa.null(), old.c.payable_cents, sa.null())
            .select_from(old.outerjoin(new, new.c.retiree_id == old.c.retiree_id))
            .where(new.c.retiree_id.is_(None))
        )
        every = sa.union_all(changed, gone).subquery()
        counts: dict[tuple[str, str], int] = {}
        changes: list[dict[str, Any]] = []
        left = 0
        for row in conn.execute(sa.select(every).order_by(every.c.retiree_id)):
            if row.new is None:
                left += 1
                continue
            counts[row.old, row.new] = counts.get((row.old, row.new), 0) + 1
            if len(changes) < limit:
                changes.append(dict(row._mapping))
        transitions = {f"{o} -> {n}": c for (o, n), c in sorted(counts.items())}
        if left:
            transitions["(left the roster)"] = left
    return Diff(str(period), str(previous), transitions, changes)


def _money(cents: int) -> str:
    return f"{cents / 100:,.2f}"


def _owed_months(conn: Connection, period: Period, retiree_id: str) -> list[str]:
    """The months a retiree was held for certification and not paid since, before
    ``period``: back from the month before, up to the last month they were paid."""
    earlier = conn.execute(
        sa.select(_runs.c.period, _lines.c.decision, _lines.c.reason)
        .select_from(
            _runs.outerjoin(
                _lines, sa.and_(_lines.c.run_id == _runs.c.id, _lines.c.retiree_id == retiree_id)
            )
        )
        .where(_runs.c.period < str(period))
        .order_by(_runs.c.period.desc())
    )
    months = []
    for month, decision, reason in earlier:
        if decision in (None, Decision.PAY.value, Decision.RESUME.value):  # None: implied pay
            break
        if reason == Reason.CERTIFICATION_OVERDUE.value:
            months.append(month)
    return months[::-1]


def explain(engine: Engine, period: Period, retiree_id: str, policy: Policy) -> str:
    """One sentence saying what the run of ``period`` decided for a retiree, and why."""
    with engine.connect() as conn:
        run = get_run(conn, period)
        line = conn.execute(sa.select(run_lines(run, retiree_ids=[retiree_id]))).first()
        if line is None:
            raise RunError(f"{retiree_id} is not in the run for {period} (not on the roster then)")
        resumed = line.decision == Decision.RESUME.value
        settled = _owed_months(conn, period, retiree_id) if resumed else []
    basis = line.basis_date
    head = f"{period} {retiree_id}: {line.decision}"
    match line.reason:
        case None if line.decision == Decision.RESUME.value:
            return (
                f"{head} {_money(line.payable_cents)} = {_money(line.amount_cents)} for {period}"
                f" + arrears {_money(line.arrears_cents)} for {len(settled)} month(s) held only"
                f" for a missed certification ({', '.join(settled)}); certified until {basis}"
            )
        case None:
            return f"{head} {_money(line.payable_cents)}; certified until {basis}"
        case Reason.CERTIFICATION_OVERDUE:
            grace = f" + {policy.grace_days} day(s) grace" if policy.grace_days else ""
            was = f"expired after {basis}" if basis else "never recorded"
            return (
                f"{head} ({line.reason}): certification {was}{grace}, not valid on "
                f"{period.first_day}; {_money(line.amount_cents)} becomes arrears, back-paid "
                "once certified"
            )
        case Reason.DECEASED:
            return (
                f"{head} ({line.reason}): died on {basis} (death registry); {Period.of(basis)} "
                "was the last month payable"
            )
        case Reason.IMPRISONED:
            return (
                f"{head} ({line.reason}): in prison on {period.first_day} (since {basis}, prison "
                "registry); payment resumes from the first month started in freedom, no back-pay"
            )
        case Reason.NOT_RETIRED:
            return f"{head} ({line.reason}): retires on {basis}"
        case Reason.MANUAL:
            return f"{head} ({line.reason}): a manual hold is open; release it to pay"
        case Reason.INCOMPLETE:
            return f"{head} ({line.reason}): no monthly amount or bank account on the roster"
        case _:
            return f"{head} ({line.reason}): roster status is {line.reason.split('_')[0]}"
