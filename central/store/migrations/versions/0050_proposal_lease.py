"""A lease on applying a proposal: who holds it and until when (``proposals resume``).

Revision ID: 0050
Revises: 0040
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0050"
down_revision: str | None = "0045"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``apply_token``, ``apply_by`` and ``apply_until`` to ``proposals``."""
    op.add_column("proposals", sa.Column("apply_token", sa.String(32)))
    op.add_column("proposals", sa.Column("apply_by", sa.String(100)))
    op.add_column("proposals", sa.Column("apply_until", sa.DateTime(timezone=True)))


def downgrade() -> None:
    """Drop the lease columns."""
    with op.batch_alter_table("proposals") as batch:
        batch.drop_column("apply_until")
        batch.drop_column("apply_by")
        batch.drop_column("apply_token")
