"""Certification coverage per community: certified %, overdue, due within the reminder window.

Counts active and suspended retirees (the deceased and terminated need no
certification). On a date ``as_of``: *certified* = ``certified_until >= as_of``;
*due* = certified but expiring within ``reminder_days``; *overdue* = not certified.
"""

import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from central.people import csvio
from central.store import schema

_r = schema.retirees
NO_COMMUNITY = "(none)"


@dataclass(frozen=True)
class Row:
    """Coverage of one community."""

    community: str
    retirees: int
    certified: int
    due: int
    overdue: int

    @property
    def certified_pct(self) -> float:
        return 100.0 * self.certified / self.retirees if self.retirees else 0.0


def report(engine: Engine, as_of: dt.date, reminder_days: int) -> list[Row]:
    """One row per community (lowest certified % first), then a ``TOTAL`` row."""
    until = _r.c.certified_until
    certified = sa.and_(until.is_not(None), until >= as_of)
    due = sa.and_(certified, until < as_of + dt.timedelta(days=reminder_days))
    community = sa.func.coalesce(_r.c.community, NO_COMMUNITY)
    query = (
        sa.select(
            community,
            sa.func.count(),
            sa.func.sum(sa.case((certified, 1), else_=0)),
            sa.func.sum(sa.case((due, 1), else_=0)),
        )
        .where(
            _r.c.status.in_(
                [schema.RetireeStatus.ACTIVE.value, schema.RetireeStatus.SUSPENDED.value]
            )
        )
        .group_by(community)
    )
    with engine.connect() as conn:
        rows = [
            Row(name, int(n), int(ok or 0), int(soon or 0), int(n) - int(ok or 0))
            for name, n, ok, soon in conn.execute(query)
        ]
    rows.sort(key=lambda r: (r.certified_pct, r.community))
    total = Row(
        "TOTAL",
        sum(r.retirees for r in rows),
        sum(r.certified for r in rows),
        sum(r.due for r in rows),
        sum(r.overdue for r in rows),
    )
    return [*rows, total]


def to_csv(rows: list[Row]) -> str:
    """CSV with a header row (``central.people.csvio``: formulas neutralised); ``certified_pct``
    to one decimal."""
    out = io.StringIO()
    writer = csvio.writer(out)
    writer.writerow(["community", "retirees", "certified", "certified_pct", "due", "overdue"])
    for r in rows:
        writer.writerow(
            [r.community, r.retirees, r.certified, round(r.certified_pct, 1), r.due, r.overdue]
        )
    return out.getvalue()


def to_png(rows: list[Row], path: Path, as_of: dt.date) -> Path:
    """A stacked horizontal bar chart (certified, due, overdue) per community."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    shown = [r for r in rows if r.community != "TOTAL"]
    names = [r.community for r in shown]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(shown) + 1.5))
    settled = [r.certified - r.due for r in shown]
    due = [r.due for r in shown]
    ax.barh(names, settled, color="#2e7d32", label="certified")
    ax.barh(names, due, left=settled, color="#f9a825", label="due soon")
    ax.barh(
        names,
        [r.overdue for r in shown],
        left=[a + b for a, b in zip(settled, due, strict=True)],
        color="#c62828",
        label="overdue",
    )
    ax.set_xlabel("retirees")
    ax.set_title(f"Certification coverage on {as_of}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
