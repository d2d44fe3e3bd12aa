"""The registries' hits report: every death and prison record by category, with what was
paid that should not have been (the amount to recover).

Reads the registry records (``central.people.registries`` matched them) and every run's lines.
"""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from central.payments.period import Period
from central.payments.runs import Decision, Reason, run_lines
from central.store import schema

RegistryKind = schema.RegistryKind
_reg, _r, _runs = schema.registry_records, schema.retirees, schema.payment_runs
_PAID = (Decision.PAY.value, Decision.RESUME.value)
_CHUNK = 500


@dataclass(frozen=True)
class Hit:
    """One line of the hits report."""

    category: str
    id_number: str
    name: str | None
    detail: str
    amount_cents: int = 0


def _paid_lines(conn: Connection, ids: list[str]) -> dict[str, list[tuple[Period, int]]]:
    """(period, amount) of every paid month per retiree: the months paid by the runs, and
    the months held for certification that a later run's ``resume`` back-paid."""
    out: dict[str, list[tuple[Period, int]]] = defaultdict(list)
    runs = conn.execute(sa.select(_runs).order_by(_runs.c.period)).all()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        owed: dict[str, list[tuple[Period, int]]] = defaultdict(list)
        for run in runs:
            lines = run_lines(run, retiree_ids=chunk)
            rows = conn.execute(
                sa.select(
                    lines.c.retiree_id, lines.c.decision, lines.c.reason, lines.c.amount_cents
                ).where(
                    sa.or_(
                        lines.c.decision.in_(_PAID),
                        lines.c.reason == Reason.CERTIFICATION_OVERDUE.value,
                    )
                )
            )
            month = Period.parse(run.period)
            for rid, decision, reason, amount in rows:
                if reason == Reason.CERTIFICATION_OVERDUE.value:
                    owed[rid].append((month, int(amount)))
                    continue
                out[rid].append((month, int(amount)))
                if decision == Decision.RESUME.value:
                    out[rid].extend(owed.pop(rid, []))
    return out


def hits(engine: Engine, today: dt.date | None = None) -> list[Hit]:
    """Every registry record by category, with overpayments to recover.

    Categories: ``died_still_paid`` (paid for months after the death month: the
    amount to recover), ``died_stopped``, ``imprisoned_paid`` (paid for a month
    that started in prison), ``imprisoned_now``, ``released``, ``birth_date_mismatch``
    (ID number on the roster with another birth date: review, never applied),
    ``not_on_roster``.
    """
    today = today or dt.date.today()
    out: list[Hit] = []
    with engine.connect() as conn:
        records = conn.execute(
            sa.select(_reg, _r.c.birth_date.label("roster_birth"))
            .select_from(_reg.outerjoin(_r, _r.c.id_number == _reg.c.id_number))
            .order_by(_reg.c.kind, _reg.c.id_number, _reg.c.start_date)
        ).all()
        paid = _paid_lines(conn, sorted({r.retiree_id for r in records if r.retiree_id}))
    for rec in records:
        name = rec.name
        if rec.retiree_id is None:
            if rec.roster_birth is None:
                out.append(Hit("not_on_roster", rec.id_number, name, f"{rec.kind} record"))
            else:
                out.append(
                    Hit(
                        "birth_date_mismatch",
                        rec.id_number,
                        name,
                        f"{rec.kind} record says born {rec.birth_date}, roster says "
                        f"{rec.roster_birth}: check both, not applied",
                    )
                )
            continue
        months = paid.get(rec.retiree_id, [])
        if rec.kind == RegistryKind.DEATH.value:
            last = Period.of(rec.start_date)
            after = [(p, a) for p, a in months if p > last]
            if after:
                total = sum(a for _, a in after)
                listed = ", ".join(sorted({str(p) for p, _ in after}))
                out.append(
                    Hit(
                        "died_still_paid",
                        rec.id_number,
                        name,
                        f"died {rec.start_date}, paid for {listed}: recover",
                        total,
                    )
                )
            else:
                out.append(Hit("died_stopped", rec.id_number, name, f"died {rec.start_date}"))
            continue
        inside = [
            (p, a)
            for p, a in months
            if rec.start_date <= p.first_day
            and (rec.end_date is None or p.first_day < rec.end_date)
        ]
        if inside:
            listed = ", ".join(sorted({str(p) for p, _ in inside}))
            out.append(
                Hit(
                    "imprisoned_paid",
                    rec.id_number,
                    name,
                    f"in prison from {rec.start_date}, paid for {listed}",
                    sum(a for _, a in inside),
                )
            )
        elif rec.end_date is None or rec.end_date > today:
            out.append(Hit("imprisoned_now", rec.id_number, name, f"since {rec.start_date}"))
        else:
            out.append(Hit("released", rec.id_number, name, f"{rec.start_date} to {rec.end_date}"))
    return out


def summary(found: list[Hit]) -> list[dict[str, Any]]:
    """Counts and amounts per category."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for hit in found:
        totals[hit.category][0] += 1
        totals[hit.category][1] += hit.amount_cents
    return [{"category": c, "count": n, "amount_cents": a} for c, (n, a) in sorted(totals.items())]
