"""The console's drill-down lists: retirees indexed by community then ID number, so a
community's list is read in page order and stops at a page.

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
    """One index on ``retirees``."""
    op.create_index("ix_retirees_community_id_number", "retirees", ["community", "id_number"])


def downgrade() -> None:
    """Drop it."""
    op.drop_index("ix_retirees_community_id_number", "retirees")
