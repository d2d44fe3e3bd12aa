"""Staff: accounts, the pinned staff CA, staff certificates and the chained audit log.

The audit log is append-only in the database too: triggers refuse UPDATE and DELETE on
it (someone who can drop the triggers can still tamper; ``audit verify`` detects that).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
SERIAL = sa.BigInteger().with_variant(sa.Integer, "sqlite")

_PG_GUARD = """
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
"""
_SQLITE_GUARD = [
    f"""CREATE TRIGGER audit_log_no_{what} BEFORE {what.upper()} ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"""
    for what in ("update", "delete")
]


def upgrade() -> None:
    """Create the tables and the audit log's append-only triggers."""
    op.create_table(
        "staff",
        sa.Column("staff_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("roles", sa.JSON, nullable=False),
        sa.Column("communities", sa.JSON, nullable=False),
        sa.Column("sites", sa.JSON, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("failed_logins", sa.Integer, nullable=False),
        sa.Column("locked", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("staff_id", name="pk_staff"),
    )
    op.create_table(
        "staff_ca",
        sa.Column("id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("cert_pem", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_staff_ca"),
    )
    op.create_table(
        "staff_certs",
        sa.Column("serial", sa.String(40), nullable=False),
        sa.Column("staff_id", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("not_before", TS, nullable=False),
        sa.Column("not_after", TS, nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("issued_by", sa.String(64), nullable=False),
        sa.Column("revoked_at", TS),
        sa.Column("revoked_by", sa.String(64)),
        sa.Column("revoke_reason", sa.String(200)),
        sa.PrimaryKeyConstraint("serial", name="pk_staff_certs"),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.staff_id"], name="fk_staff_certs_staff_id_staff"
        ),
        sa.UniqueConstraint("fingerprint", name="uq_staff_certs_fingerprint"),
    )
    op.create_index("ix_staff_certs_staff_id", "staff_certs", ["staff_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", SERIAL, autoincrement=False, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("staff_id", sa.String(64), nullable=False),
        sa.Column("roles", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("before", sa.Text),
        sa.Column("after", sa.Text),
        sa.Column("address", sa.String(64)),
        sa.Column("cert_serial", sa.String(40)),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("event_id", sa.BigInteger),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
        sa.UniqueConstraint("event_id", name="uq_audit_log_event_id"),
        sa.UniqueConstraint("prev_hash", name="uq_audit_log_prev_hash"),
    )
    op.create_index("ix_audit_log_action", "audit_log", ["action"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_GUARD)
    else:
        for statement in _SQLITE_GUARD:
            op.execute(statement)


def downgrade() -> None:
    """Drop the staff tables (and with them the audit log and its triggers)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    for table in ("audit_log", "staff_certs", "staff_ca", "staff"):
        op.drop_table(table)
