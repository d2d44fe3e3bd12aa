"""Fleet-health tables (on ``schema.metadata``): each terminal's last state, and alerts."""

import sqlalchemy as sa

from central.store.schema import UtcDateTime, metadata

FLEET_WIDE = "*"
"""``fleet_alerts.subject`` of an alert about the whole fleet (no device id is ``*``)."""

fleet_devices = sa.Table(
    "fleet_devices",
    metadata,
    sa.Column("device_id", sa.String(63), primary_key=True),
    sa.Column("status", sa.String(16)),  # online / offline / stopped (retained, last will)
    sa.Column("status_at", UtcDateTime),  # when central received it
    sa.Column("last_seen", UtcDateTime),  # last telemetry received
    sa.Column("clock_skew_s", sa.Float),  # device time - central's time at receipt
    sa.Column("telemetry", sa.JSON),  # the last valid report (protocol.messages.Telemetry)
)

fleet_alerts = sa.Table(
    "fleet_alerts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("rule", sa.String(32), nullable=False),
    sa.Column("subject", sa.String(63), nullable=False),  # a device id, or FLEET_WIDE
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("raised_at", UtcDateTime, nullable=False),
    sa.Column("cleared_at", UtcDateTime, index=True),
    sa.Column("acked_at", UtcDateTime),
    sa.Column("acked_by", sa.String(64)),
    sa.Column("notify_error", sa.String(300)),  # delivery failure of an alert before the outbox
    sa.Index("ix_fleet_alerts_rule_subject", "rule", "subject"),
    # one open alert per rule and subject, even with several central processes checking
    sa.Index(
        "uq_fleet_alerts_open",
        "rule",
        "subject",
        unique=True,
        sqlite_where=sa.text("cleared_at IS NULL"),
        postgresql_where=sa.text("cleared_at IS NULL"),
    ),
)
