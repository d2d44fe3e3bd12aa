"""Fleet desired config, signed commands and rollouts (issue 15).

Revision ID: 0025
Revises: 0022
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the fleet_* tables of desired config, commands and rollouts."""
    op.create_table(
        "fleet_groups",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("device_id", sa.String(63), nullable=False),
        sa.PrimaryKeyConstraint("name", "device_id", name=op.f("pk_fleet_groups")),
    )
    op.create_table(
        "fleet_config_sets",
        sa.Column("target", sa.String(80), nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("target", name=op.f("pk_fleet_config_sets")),
    )
    op.create_table(
        "fleet_desired",
        sa.Column("device_id", sa.String(63), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("token", sa.Text, nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("published_at", TS),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_fleet_desired")),
    )
    op.create_table(
        "fleet_reported",
        sa.Column("device_id", sa.String(63), nullable=False),
        sa.Column("config_version", sa.BigInteger, nullable=False),
        sa.Column("config_sha256", sa.String(64)),
        sa.Column("config_error", sa.String(500)),
        sa.Column("model_version", sa.String(40)),
        sa.Column("software_version", sa.String(40), nullable=False),
        sa.Column("device_time", TS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_fleet_reported")),
    )
    op.create_table(
        "fleet_commands",
        sa.Column("command_id", sa.Uuid, nullable=False),
        sa.Column("device_id", sa.String(63), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("args", sa.JSON, nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("token", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("ack_data", sa.JSON),
        sa.Column("acked_at", TS),
        sa.Column("rollout_id", sa.String(40)),
        sa.PrimaryKeyConstraint("command_id", name=op.f("pk_fleet_commands")),
    )
    for column in ("device_id", "status", "rollout_id"):
        op.create_index(op.f(f"ix_fleet_commands_{column}"), "fleet_commands", [column])
    op.create_table(
        "fleet_rollouts",
        sa.Column("rollout_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("waves", sa.JSON, nullable=False),
        sa.Column("max_failure_rate", sa.Float, nullable=False),
        sa.Column("auto_advance", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("wave", sa.Integer, nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("rollout_id", name=op.f("pk_fleet_rollouts")),
    )
    op.create_table(
        "fleet_rollout_devices",
        sa.Column("rollout_id", sa.String(40), nullable=False),
        sa.Column("device_id", sa.String(63), nullable=False),
        sa.Column("wave", sa.Integer, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("rollout_id", "device_id", name=op.f("pk_fleet_rollout_devices")),
    )


def downgrade() -> None:
    """Drop them."""
    for table in (
        "fleet_rollout_devices",
        "fleet_rollouts",
        "fleet_commands",
        "fleet_reported",
        "fleet_desired",
        "fleet_config_sets",
        "fleet_groups",
    ):
        op.drop_table(table)
