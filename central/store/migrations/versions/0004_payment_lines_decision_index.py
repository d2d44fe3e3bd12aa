"""Payment lines indexed by (run, decision, reason): a run's summary streams in index order
(no sort of a million lines) and its resumed or held lines are a short index range.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Replace the (run, reason) index."""
    op.create_index(
        "ix_payment_lines_run_id_decision_reason",
        "payment_lines",
        ["run_id", "decision", "reason"],
    )
    op.drop_index("ix_payment_lines_run_id_reason", table_name="payment_lines")


def downgrade() -> None:
    """Back to the (run, reason) index."""
    op.create_index("ix_payment_lines_run_id_reason", "payment_lines", ["run_id", "reason"])
    op.drop_index("ix_payment_lines_run_id_decision_reason", table_name="payment_lines")
