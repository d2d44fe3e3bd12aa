"""Reminders sent (``central.notify.reminders``): one row per outbox message, for the
coordinator's report.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0032"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The table and its two indexes."""
    op.create_table(
        "reminders",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("retiree_id", sa.String(18), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("due_date", sa.Date, nullable=False),
        sa.Column("reminded_on", sa.Date, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_reminders"),
    )
    op.create_index("ix_reminders_retiree_id", "reminders", ["retiree_id"])
    op.create_index("ix_reminders_reminded_on", "reminders", ["reminded_on"])


def downgrade() -> None:
    """Drop it."""
    op.drop_table("reminders")
