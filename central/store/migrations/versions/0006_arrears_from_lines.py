"""Arrears read from the stored lines: ``payment_lines.owed_cents``, ``arrears`` a view.

An arrears month is a ``certification_overdue`` hold line, settled by the retiree's next
``resume`` line; the ``arrears`` table repeated them row for row (one insert per held
retiree and month, one update when settled). Each stored line now carries what the
retiree is owed after it (``owed_cents``: the unpaid arrears, this month's included when
held for certification; 0 once resumed), so a run reads the previous run's lines instead
of grouping arrears rows. ``arrears`` stays as a view with the same columns for readers.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Each certification hold line; settled in the first later run with a resume line.
_DERIVED = """SELECT retiree_id, period, amount_cents, held_in_run, settled_in_run FROM (
    SELECT l.retiree_id, r.period, l.amount_cents, l.run_id AS held_in_run, l.decision,
        l.reason,
        MIN(CASE WHEN l.decision = 'resume' THEN l.run_id END) OVER (
            PARTITION BY l.retiree_id ORDER BY l.run_id
            ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING
        ) AS settled_in_run
    FROM payment_lines l JOIN payment_runs r ON r.id = l.run_id
    WHERE l.decision IN ('hold', 'resume')
) held WHERE decision = 'hold' AND reason = 'certification_overdue'"""


def upgrade() -> None:
    """The column, filled from the arrears rows for every stored hold and stop line; the
    table replaced by the view."""
    op.add_column(
        "payment_lines",
        sa.Column("owed_cents", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.execute(
        """UPDATE payment_lines SET owed_cents = COALESCE((
            SELECT SUM(a.amount_cents)
            FROM arrears a
            JOIN payment_runs m ON m.id = payment_lines.run_id
            LEFT JOIN payment_runs s ON s.id = a.settled_in_run
            WHERE a.retiree_id = payment_lines.retiree_id AND a.period <= m.period
                AND (s.period IS NULL OR s.period > m.period)
        ), 0)
        WHERE decision IN ('hold', 'stop')
            AND EXISTS (SELECT 1 FROM arrears a WHERE a.retiree_id = payment_lines.retiree_id)"""
    )
    op.drop_table("arrears")
    op.execute(f"CREATE VIEW arrears AS {_DERIVED}")


def downgrade() -> None:
    """The arrears table again, filled from the lines; the column dropped."""
    op.execute("DROP VIEW arrears")
    op.create_table(
        "arrears",
        sa.Column("retiree_id", sa.String(18), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("held_in_run", sa.BigInteger, nullable=False),
        sa.Column("settled_in_run", sa.BigInteger),
        sa.PrimaryKeyConstraint("retiree_id", "period", name="pk_arrears"),
    )
    op.create_index("ix_arrears_settled_in_run", "arrears", ["settled_in_run"])
    op.create_index("ix_arrears_held_in_run", "arrears", ["held_in_run"])
    op.execute(
        "INSERT INTO arrears (retiree_id, period, amount_cents, held_in_run, settled_in_run) "
        + _DERIVED
    )
    op.execute("ALTER TABLE payment_lines DROP COLUMN owed_cents")
