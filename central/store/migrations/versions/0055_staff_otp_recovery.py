"""Recovery codes for staff second factors: ``staff_otp_recovery`` (keyed hashes only).

Revision ID: 0055
Revises: 0050
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0055"
down_revision: str | None = "0050"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``staff_otp_recovery``."""
    op.create_table(
        "staff_otp_recovery",
        sa.Column("staff_id", sa.String(64), sa.ForeignKey("staff.staff_id"), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("staff_id", "code_hash"),
    )


def downgrade() -> None:
    """Drop ``staff_otp_recovery``."""
    op.drop_table("staff_otp_recovery")
