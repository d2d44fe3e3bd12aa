"""The console's tables: coverage counts kept by triggers, coverage history, review
decisions; an index on ``results.received_at`` for today's certifications.

Revision ID: 0020
Revises: 0015
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = "coalesce({t}.community, '(none)'), {t}.status, coalesce({t}.certified_until, '0001-01-01')"
_MATCH = (
    "community = coalesce({t}.community, '(none)') AND status = {t}.status "
    "AND certified_until = coalesce({t}.certified_until, '0001-01-01')"
)
_ADD = (
    "INSERT INTO coverage_counts (community, status, certified_until, n) "
    f"VALUES ({_KEY}, 1) "
    "ON CONFLICT (community, status, certified_until) DO UPDATE SET n = coverage_counts.n + 1"
)
_REMOVE = f"UPDATE coverage_counts SET n = n - 1 WHERE {_MATCH}"

_SQLITE = [
    f"""CREATE TRIGGER coverage_added AFTER INSERT ON retirees
    BEGIN {_ADD.format(t="NEW")}; END""",
    f"""CREATE TRIGGER coverage_removed AFTER DELETE ON retirees
    BEGIN {_REMOVE.format(t="OLD")}; END""",
    f"""CREATE TRIGGER coverage_changed AFTER UPDATE OF community, status, certified_until
    ON retirees
    WHEN OLD.community IS NOT NEW.community OR OLD.status IS NOT NEW.status
      OR OLD.certified_until IS NOT NEW.certified_until
    BEGIN {_REMOVE.format(t="OLD")}; {_ADD.format(t="NEW")}; END""",
]
_POSTGRES = [
    f"""CREATE FUNCTION coverage_count() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP IN ('UPDATE', 'DELETE') THEN
        {_REMOVE.format(t="OLD").replace("'0001-01-01'", "DATE '0001-01-01'")};
      END IF;
      IF TG_OP IN ('UPDATE', 'INSERT') THEN
        {_ADD.format(t="NEW").replace("'0001-01-01'", "DATE '0001-01-01'")};
      END IF;
      RETURN NULL;
    END $$""",
    """CREATE TRIGGER coverage_added AFTER INSERT OR DELETE ON retirees
    FOR EACH ROW EXECUTE FUNCTION coverage_count()""",
    """CREATE TRIGGER coverage_changed AFTER UPDATE OF community, status, certified_until
    ON retirees FOR EACH ROW
    WHEN (OLD.community IS DISTINCT FROM NEW.community OR OLD.status IS DISTINCT FROM NEW.status
      OR OLD.certified_until IS DISTINCT FROM NEW.certified_until)
    EXECUTE FUNCTION coverage_count()""",
]


def upgrade() -> None:
    """Tables, the index, today's counts, then the triggers that keep them."""
    op.create_table(
        "coverage_counts",
        sa.Column("community", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("certified_until", sa.Date, nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint(
            "community", "status", "certified_until", name="pk_coverage_counts"
        ),
    )
    op.create_table(
        "coverage_history",
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("community", sa.String(100), nullable=False),
        sa.Column("retirees", sa.BigInteger, nullable=False),
        sa.Column("certified", sa.BigInteger, nullable=False),
        sa.Column("due", sa.BigInteger, nullable=False),
        sa.Column("overdue", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("day", "community", name="pk_coverage_history"),
    )
    op.create_table(
        "review_decisions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("queue", sa.String(24), nullable=False),
        sa.Column("item", sa.String(64), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("staff_id", sa.String(100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_review_decisions"),
        sa.UniqueConstraint("queue", "item", name="uq_review_decisions_queue_item"),
    )
    op.create_index("ix_results_received_at", "results", ["received_at"])
    op.execute(
        f"INSERT INTO coverage_counts (community, status, certified_until, n) "
        f"SELECT {_KEY.format(t='retirees')}, count(*) FROM retirees "
        f"GROUP BY {_KEY.format(t='retirees')}".replace(
            "'0001-01-01'",
            "DATE '0001-01-01'" if op.get_bind().dialect.name == "postgresql" else "'0001-01-01'",
        )
    )
    for statement in _POSTGRES if op.get_bind().dialect.name == "postgresql" else _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    """Drop the triggers, the index and the tables."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER coverage_added ON retirees")
        op.execute("DROP TRIGGER coverage_changed ON retirees")
        op.execute("DROP FUNCTION coverage_count()")
    else:
        for name in ("coverage_added", "coverage_removed", "coverage_changed"):
            op.execute(f"DROP TRIGGER {name}")
    op.drop_index("ix_results_received_at", "results")
    op.drop_table("review_decisions")
    op.drop_table("coverage_history")
    op.drop_table("coverage_counts")
