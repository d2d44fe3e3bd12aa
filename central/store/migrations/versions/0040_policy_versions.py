"""Policy parameters versioned with effective dates: ``policy_versions``, append-only.

Revision ID: 0040
Revises: 0036
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0040"
down_revision: str | None = "0036"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PG_GUARD = """
CREATE FUNCTION policy_versions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'policy_versions is append-only: propose a new version';
END $$;
CREATE TRIGGER policy_versions_no_update BEFORE UPDATE OR DELETE ON policy_versions
    FOR EACH ROW EXECUTE FUNCTION policy_versions_append_only();
"""
_SQLITE_GUARD = [
    f"""CREATE TRIGGER policy_versions_no_{what} BEFORE {what.upper()} ON policy_versions
    BEGIN SELECT RAISE(ABORT, 'policy_versions is append-only: propose a new version'); END"""
    for what in ("update", "delete")
]


def upgrade() -> None:
    """Create ``policy_versions`` and the triggers that refuse editing it."""
    op.create_table(
        "policy_versions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("proposal_id", sa.BigInteger(), nullable=False),
        sa.Column("approved_by", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_policy_versions"),
    )
    op.create_index("ix_policy_versions_effective_from", "policy_versions", ["effective_from"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_GUARD)
    else:
        for statement in _SQLITE_GUARD:
            op.execute(statement)


def downgrade() -> None:
    """Drop it (the policy is then ``central.toml``'s alone)."""
    op.drop_index("ix_policy_versions_effective_from", "policy_versions")
    op.drop_table("policy_versions")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS policy_versions_append_only()")
