"""Payments: registries, payment runs and lines, arrears, bank returns, face templates, flags.

Revision ID: 0002
Revises: 0001
Create Date: 2026-02-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
SERIAL = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    """Create the tables."""
    op.create_table(
        "registry_records",
        sa.Column("id", SERIAL, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("id_number", sa.String(18), nullable=False),
        sa.Column("birth_date", sa.Date, nullable=False),
        sa.Column("name", sa.String(100)),
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("end_date", sa.Date),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("imported_at", TS, nullable=False),
        sa.Column("retiree_id", sa.String(18)),
        sa.PrimaryKeyConstraint("id", name="pk_registry_records"),
        sa.UniqueConstraint(
            "kind", "id_number", "start_date", name="uq_registry_records_kind_id_number_start_date"
        ),
    )
    op.create_index("ix_registry_records_retiree_id", "registry_records", ["retiree_id"])
    op.create_table(
        "payment_runs",
        sa.Column("id", SERIAL, nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("policy", sa.JSON, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("file_sha256", sa.String(64)),
        sa.PrimaryKeyConstraint("id", name="pk_payment_runs"),
        sa.UniqueConstraint("period", name="uq_payment_runs_period"),
    )
    op.create_table(
        "payment_lines",
        sa.Column("id", SERIAL, nullable=False),
        sa.Column("run_id", SERIAL, nullable=False),
        sa.Column("retiree_id", sa.String(18), nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("reason", sa.String(24)),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("arrears_cents", sa.BigInteger, nullable=False),
        sa.Column("payable_cents", sa.BigInteger, nullable=False),
        sa.Column("basis_date", sa.Date),
        sa.PrimaryKeyConstraint("id", name="pk_payment_lines"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["payment_runs.id"], name="fk_payment_lines_run_id_payment_runs"
        ),
    )
    op.create_index("ix_payment_lines_run_id_reason", "payment_lines", ["run_id", "reason"])
    op.create_table(
        "arrears",
        sa.Column("retiree_id", sa.String(18), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("held_in_run", sa.BigInteger, nullable=False),
        sa.Column("settled_in_run", sa.BigInteger),
        sa.PrimaryKeyConstraint("retiree_id", "period", name="pk_arrears"),
    )
    op.create_index("ix_arrears_settled_in_run", "arrears", ["settled_in_run"])
    op.create_index("ix_arrears_held_in_run", "arrears", ["held_in_run"])
    op.create_table(
        "bank_returns",
        sa.Column("run_id", sa.BigInteger, nullable=False),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("retiree_id", sa.String(18), nullable=False),
        sa.Column("bank_account", sa.String(34), nullable=False),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("note", sa.String(200)),
        sa.Column("imported_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "line", name="pk_bank_returns"),
    )
    op.create_table(
        "face_templates",
        sa.Column("result_id", sa.Uuid, nullable=False),
        sa.Column("retiree_id", sa.String(18), nullable=False),
        sa.Column("model", sa.String(64)),
        sa.Column("vector", sa.LargeBinary),
        sa.Column("problem", sa.String(200)),
        sa.Column("indexed_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("result_id", name="pk_face_templates"),
    )
    op.create_index("ix_face_templates_retiree_id", "face_templates", ["retiree_id"])
    op.create_table(
        "fraud_flags",
        sa.Column("id", SERIAL, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("retiree_id", sa.String(18), nullable=False),
        sa.Column("other_retiree_id", sa.String(18)),
        sa.Column("result_id", sa.Uuid),
        sa.Column("other_result_id", sa.Uuid),
        sa.Column("score", sa.Float),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_fraud_flags"),
        sa.UniqueConstraint(
            "kind",
            "retiree_id",
            "other_retiree_id",
            "result_id",
            name="uq_fraud_flags_kind_retiree_id_other_retiree_id_result_id",
        ),
    )
    op.create_index("ix_fraud_flags_kind", "fraud_flags", ["kind"])


def downgrade() -> None:
    """Drop the tables."""
    for table in (
        "fraud_flags",
        "face_templates",
        "bank_returns",
        "arrears",
        "payment_lines",
        "payment_runs",
        "registry_records",
    ):
        op.drop_table(table)
