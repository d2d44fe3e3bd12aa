"""Proposals: changes to money or eligibility entered, rechecked and approved by others.

Revision ID: 0015
Revises: 0010
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
SERIAL = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    """Create the tables."""
    op.create_table(
        "proposals",
        sa.Column("id", SERIAL, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("levels", sa.Integer, nullable=False),
        sa.Column("done", sa.Integer, nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("summary", sa.String(500), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("decided_at", TS),
        sa.Column("reason", sa.String(500)),
        sa.Column("result", sa.JSON),
        sa.PrimaryKeyConstraint("id", name="pk_proposals"),
    )
    op.create_index("ix_proposals_status", "proposals", ["status"])
    op.create_table(
        "proposal_steps",
        sa.Column("proposal_id", SERIAL, nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("staff_id", sa.String(100), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("action", sa.String(12), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.ForeignKeyConstraint(
            ["proposal_id"], ["proposals.id"], name="fk_proposal_steps_proposal_id_proposals"
        ),
        sa.PrimaryKeyConstraint("proposal_id", "level", name="pk_proposal_steps"),
        sa.UniqueConstraint(
            "proposal_id", "staff_id", name="uq_proposal_steps_proposal_id_staff_id"
        ),
    )
    op.create_table(
        "proposal_rows",
        sa.Column("proposal_id", SERIAL, nullable=False),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("retiree_id", sa.String(18), nullable=False),
        sa.Column("change", sa.String(8), nullable=False),
        sa.Column("before", sa.JSON),
        sa.Column("after", sa.JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["proposal_id"], ["proposals.id"], name="fk_proposal_rows_proposal_id_proposals"
        ),
        sa.PrimaryKeyConstraint("proposal_id", "line", name="pk_proposal_rows"),
    )


def downgrade() -> None:
    """Drop the tables."""
    op.drop_table("proposal_rows")
    op.drop_table("proposal_steps")
    op.drop_index("ix_proposals_status", table_name="proposals")
    op.drop_table("proposals")
