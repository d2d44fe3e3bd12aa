"""The console's drill-down lists: retirees indexed by certification date, and by
community then certification date.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Two indexes on ``retirees``."""
    op.create_index("ix_retirees_certified_until", "retirees", ["certified_until"])
    op.create_index(
        "ix_retirees_community_certified_until", "retirees", ["community", "certified_until"]
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_retirees_community_certified_until", "retirees")
    op.drop_index("ix_retirees_certified_until", "retirees")
