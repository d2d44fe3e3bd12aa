"""The (run, decision, reason) index on payment_lines goes.

Migration 0004 made it when a run stored a line per retiree (a million lines to group
for a summary). Since 0005 a run stores only its hold, stop and resume lines (about one
retiree in eight), read through the (run, retiree) index; keeping a second index up to
date cost each run more than it saved its summary (measured: the 2026-05 run of the 1M
benchmark 0.06-0.09 s faster without it, its summary 0.06 s slower).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Drop the index."""
    op.drop_index("ix_payment_lines_run_id_decision_reason", table_name="payment_lines")


def downgrade() -> None:
    """Make it again."""
    op.create_index(
        "ix_payment_lines_run_id_decision_reason",
        "payment_lines",
        ["run_id", "decision", "reason"],
    )
