"""Staff second factors: ``staff_otp`` (a TOTP secret per member, encrypted at rest).

Revision ID: 0045
Revises: 0040
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0045"
down_revision: str | None = "0040"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``staff_otp``."""
    op.create_table(
        "staff_otp",
        sa.Column("staff_id", sa.String(64), sa.ForeignKey("staff.staff_id"), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("confirmed_at", TS),
        sa.Column("last_step", sa.BigInteger()),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("staff_id"),
    )


def downgrade() -> None:
    """Drop ``staff_otp``."""
    op.drop_table("staff_otp")
