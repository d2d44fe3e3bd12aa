"""Fleet health: each terminal's last status and telemetry, and alerts raised from them.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

TS = sa.DateTime(timezone=True)

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fleet_devices",
        sa.Column("device_id", sa.String(63), nullable=False),
        sa.Column("status", sa.String(16)),
        sa.Column("status_at", TS),
        sa.Column("last_seen", TS),
        sa.Column("clock_skew_s", sa.Float),
        sa.Column("telemetry", sa.JSON),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_fleet_devices")),
    )
    op.create_table(
        "fleet_alerts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(63), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("raised_at", TS, nullable=False),
        sa.Column("cleared_at", TS),
        sa.Column("acked_at", TS),
        sa.Column("acked_by", sa.String(64)),
        sa.Column("notify_error", sa.String(300)),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fleet_alerts")),
    )
    op.create_index("ix_fleet_alerts_cleared_at", "fleet_alerts", ["cleared_at"])
    op.create_index("ix_fleet_alerts_rule_subject", "fleet_alerts", ["rule", "subject"])
    op.create_index(
        "uq_fleet_alerts_open",
        "fleet_alerts",
        ["rule", "subject"],
        unique=True,
        sqlite_where=sa.text("cleared_at IS NULL"),
        postgresql_where=sa.text("cleared_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("fleet_alerts")
    op.drop_table("fleet_devices")
