"""A versioned roster: payment runs store only their non-pay lines.

The payable columns (name, amount, bank account and account name, certified until)
of a retiree an earlier run may have read are copied into ``roster_versions`` before
they change (or the row is deleted), by triggers on ``retirees``; ``retirees.roster_rev``
says from which revision the current values hold, ``roster_clock`` holds the open
revision. Runs made before this migration keep every line and read the roster as it
is now (revision 0). The downgrade writes the implied pay lines back.

Note for later migrations: ``batch_alter_table("retirees")`` on SQLite rebuilds the
table and drops its triggers; create them again after it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAYABLE = ("name", "monthly_amount_cents", "bank_account", "account_name", "certified_until")
_COLS = ", ".join(PAYABLE)
_OLD = ", ".join(f"OLD.{c}" for c in PAYABLE)
_OPEN = "(SELECT revision FROM roster_clock)"
_VERSION_ROW = (
    f"INSERT INTO roster_versions (retiree_id, valid_from, valid_to, {_COLS}) "
    f"VALUES (OLD.id_number, OLD.roster_rev, {_OPEN}, {_OLD})"
)

_SQLITE = [
    f"""CREATE TRIGGER retirees_stamp AFTER INSERT ON retirees
    WHEN NEW.roster_rev IS NULL
    BEGIN
        UPDATE retirees SET roster_rev = {_OPEN} WHERE id_number = NEW.id_number;
    END""",
    f"""CREATE TRIGGER retirees_version AFTER UPDATE OF {_COLS} ON retirees
    WHEN ({" OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in PAYABLE)})
        AND OLD.roster_rev < {_OPEN}
    BEGIN
        {_VERSION_ROW};
        UPDATE retirees SET roster_rev = {_OPEN} WHERE id_number = NEW.id_number;
    END""",
    f"""CREATE TRIGGER retirees_version_deleted AFTER DELETE ON retirees
    WHEN OLD.roster_rev < {_OPEN}
    BEGIN
        {_VERSION_ROW};
    END""",
]

_POSTGRESQL = [
    f"""CREATE FUNCTION roster_version() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        open_rev bigint := {_OPEN};
    BEGIN
        IF TG_OP = 'INSERT' THEN
            NEW.roster_rev := open_rev;
            RETURN NEW;
        END IF;
        IF OLD.roster_rev < open_rev THEN
            {_VERSION_ROW.replace(_OPEN, "open_rev")};
        END IF;
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        NEW.roster_rev := open_rev;
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER retirees_stamp BEFORE INSERT ON retirees FOR EACH ROW
    WHEN (NEW.roster_rev IS NULL) EXECUTE FUNCTION roster_version()""",
    f"""CREATE TRIGGER retirees_version BEFORE UPDATE OF {_COLS} ON retirees FOR EACH ROW
    WHEN (({_OLD}) IS DISTINCT FROM ({_OLD.replace("OLD.", "NEW.")}))
    EXECUTE FUNCTION roster_version()""",
    """CREATE TRIGGER retirees_version_deleted BEFORE DELETE ON retirees FOR EACH ROW
    EXECUTE FUNCTION roster_version()""",
]


def upgrade() -> None:
    """Tables, columns, index, today's roster as revision 0 (open: 1), then the triggers."""
    op.create_table(
        "roster_clock",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_roster_clock"),
    )
    op.create_table(
        "roster_versions",
        sa.Column("retiree_id", sa.String(18), nullable=False),
        sa.Column("valid_from", sa.BigInteger, nullable=False),
        sa.Column("valid_to", sa.BigInteger, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("monthly_amount_cents", sa.BigInteger),
        sa.Column("bank_account", sa.String(34)),
        sa.Column("account_name", sa.String(100)),
        sa.Column("certified_until", sa.Date),
        sa.PrimaryKeyConstraint("retiree_id", "valid_from", name="pk_roster_versions"),
    )
    op.add_column("retirees", sa.Column("roster_rev", sa.BigInteger))
    op.add_column("payment_runs", sa.Column("roster_revision", sa.BigInteger))
    op.create_index(
        "ix_payment_lines_run_id_retiree_id",
        "payment_lines",
        ["run_id", "retiree_id"],
        unique=True,
    )
    op.execute("INSERT INTO roster_clock (id, revision) VALUES (1, 1)")
    op.execute("UPDATE retirees SET roster_rev = 0")
    for statement in _POSTGRESQL if op.get_bind().dialect.name == "postgresql" else _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    """Write every run's implied pay lines back, then drop what the upgrade made."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER retirees_stamp ON retirees")
        op.execute("DROP TRIGGER retirees_version ON retirees")
        op.execute("DROP TRIGGER retirees_version_deleted ON retirees")
        op.execute("DROP FUNCTION roster_version()")
    else:
        for name in ("retirees_stamp", "retirees_version", "retirees_version_deleted"):
            op.execute(f"DROP TRIGGER {name}")
    op.execute(
        f"""INSERT INTO payment_lines (run_id, retiree_id, decision, reason, amount_cents,
            arrears_cents, payable_cents, basis_date)
        SELECT runs.id, v.retiree_id, 'pay', NULL, COALESCE(v.monthly_amount_cents, 0), 0,
            COALESCE(v.monthly_amount_cents, 0), v.certified_until
        FROM payment_runs runs
        JOIN (
            SELECT id_number AS retiree_id, roster_rev AS valid_from, NULL AS valid_to, {_COLS}
            FROM retirees
            UNION ALL
            SELECT retiree_id, valid_from, valid_to, {_COLS} FROM roster_versions
        ) v ON v.valid_from <= runs.roster_revision
            AND (v.valid_to IS NULL OR v.valid_to > runs.roster_revision)
        WHERE runs.roster_revision IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM payment_lines l WHERE l.run_id = runs.id AND l.retiree_id = v.retiree_id
        )"""
    )
    op.drop_index("ix_payment_lines_run_id_retiree_id", table_name="payment_lines")
    # Plain ALTER TABLE on both engines (SQLite >= 3.35): a batch rebuild of retirees would
    # trip the foreign keys of results and holds.
    op.execute("ALTER TABLE payment_runs DROP COLUMN roster_revision")
    op.execute("ALTER TABLE retirees DROP COLUMN roster_rev")
    op.drop_table("roster_versions")
    op.drop_table("roster_clock")
