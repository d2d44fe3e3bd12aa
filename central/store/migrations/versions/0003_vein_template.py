"""Results: the finger-vein template enrolled at the desk, sealed to central.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable column (a vein template travels with a desk visit's result)."""
    with op.batch_alter_table("results") as batch:
        batch.add_column(sa.Column("vein_template_sealed", sa.Text, nullable=True))


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("results") as batch:
        batch.drop_column("vein_template_sealed")
