"""Initial schema: retirees, results, events, holds, quarantine.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
SERIAL = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    """Create the tables."""
    op.create_table(
        "retirees",
        sa.Column("id_number", sa.String(18), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("sex", sa.String(1), nullable=False),
        sa.Column("birth_date", sa.Date, nullable=False),
        sa.Column("community", sa.String(100)),
        sa.Column("monthly_amount_cents", sa.BigInteger),
        sa.Column("bank_account", sa.String(34)),
        sa.Column("account_name", sa.String(100)),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("retirement_date", sa.Date),
        sa.Column("certified_until", sa.Date),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id_number", name="pk_retirees"),
    )
    op.create_table(
        "results",
        sa.Column("result_id", sa.Uuid, nullable=False),
        sa.Column("device_id", sa.String(63), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("retiree_id", sa.String(18), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("device_time", TS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("applied", sa.Boolean, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("template_sealed", sa.Text),
        sa.PrimaryKeyConstraint("result_id", name="pk_results"),
        sa.UniqueConstraint("device_id", "seq", name="uq_results_device_id_seq"),
        sa.ForeignKeyConstraint(
            ["retiree_id"], ["retirees.id_number"], name="fk_results_retiree_id_retirees"
        ),
    )
    op.create_index("ix_results_retiree_id", "results", ["retiree_id"])
    op.create_table(
        "events",
        sa.Column("id", SERIAL, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("retiree_id", sa.String(18)),
        sa.Column("result_id", sa.Uuid),
        sa.Column("device_id", sa.String(63)),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_retiree_id", "events", ["retiree_id"])
    op.create_table(
        "holds",
        sa.Column("id", SERIAL, nullable=False),
        sa.Column("retiree_id", sa.String(18), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("since", TS, nullable=False),
        sa.Column("released_at", TS),
        sa.Column("released_by_result", sa.Uuid),
        sa.PrimaryKeyConstraint("id", name="pk_holds"),
        sa.ForeignKeyConstraint(
            ["retiree_id"], ["retirees.id_number"], name="fk_holds_retiree_id_retirees"
        ),
    )
    op.create_index("ix_holds_retiree_id", "holds", ["retiree_id"])
    op.create_table(
        "quarantine",
        sa.Column("id", SERIAL, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("topic", sa.String(256), nullable=False),
        sa.Column("device_id", sa.String(63)),
        sa.Column("kid", sa.String(64)),
        sa.Column("result_id", sa.Uuid),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("acked", sa.Boolean, nullable=False),
        sa.Column("payload_size", sa.Integer, nullable=False),
        sa.Column("payload_sha256", sa.String(64), nullable=False),
        sa.Column("payload_head", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_quarantine"),
    )
    op.create_index("ix_quarantine_received_at", "quarantine", ["received_at"])
    op.create_index("ix_quarantine_reason", "quarantine", ["reason"])


def downgrade() -> None:
    """Drop the tables."""
    for table in ("quarantine", "holds", "events", "results", "retirees"):
        op.drop_table(table)
