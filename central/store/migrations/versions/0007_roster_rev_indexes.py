"""The roster's revisions indexed: what changed since a run is a short index range.

A run's summary counts the roster at its revision (the implied pay lines) from the
previous run's stored totals plus the rows written since (``retirees.roster_rev`` above
that run's revision) less the versions that ended since (``roster_versions.valid_to``);
``payments diff`` reads the same two ranges. Neither index is touched by an update that
leaves ``roster_rev`` as it is (the bare amount update); ingest's first change of a
retiree after a run moves one entry.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Both indexes."""
    op.create_index("ix_retirees_roster_rev", "retirees", ["roster_rev"])
    op.create_index("ix_roster_versions_valid_to", "roster_versions", ["valid_to"])


def downgrade() -> None:
    """Neither."""
    op.drop_index("ix_roster_versions_valid_to", table_name="roster_versions")
    op.drop_index("ix_retirees_roster_rev", table_name="retirees")
