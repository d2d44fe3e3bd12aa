"""The phone channel's one-time codes and their rate-limit log (central.channels.tables).

Revision ID: 0035
Revises: 0032 (after reach: codes go to the roster's phone through its notifier)
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0035"
down_revision: str | None = "0032"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``phone_codes`` and ``phone_code_log``."""
    op.create_table(
        "phone_codes",
        sa.Column("id_number", sa.String(18), nullable=False),
        sa.Column("code_mac", sa.String(64), nullable=False),
        sa.Column("tries", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id_number", name="pk_phone_codes"),
    )
    op.create_table(
        "phone_code_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_phone_code_log"),
    )
    op.create_index("ix_phone_code_log_kind_key_at", "phone_code_log", ["kind", "key", "at"])


def downgrade() -> None:
    """Drop them (codes in flight are lost: phones ask again)."""
    op.drop_index("ix_phone_code_log_kind_key_at", "phone_code_log")
    op.drop_table("phone_code_log")
    op.drop_table("phone_codes")
