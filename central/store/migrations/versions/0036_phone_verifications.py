"""Every code a remote terminal checked right: what ingest holds a ``mobile`` result to.

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0036"
down_revision: str | None = "0035"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``phone_verifications``."""
    op.create_table(
        "phone_verifications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
        sa.Column("retiree_id", sa.String(18), nullable=False),
        sa.Column("device_id", sa.String(63), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_phone_verifications"),
    )
    op.create_index(
        "ix_phone_verifications_retiree_id_device_id",
        "phone_verifications",
        ["retiree_id", "device_id"],
    )


def downgrade() -> None:
    """Drop it (mobile results then arrive unchecked against codes)."""
    op.drop_index("ix_phone_verifications_retiree_id_device_id", "phone_verifications")
    op.drop_table("phone_verifications")
