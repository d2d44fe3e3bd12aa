"""Central's tables (SQLAlchemy Core), one schema for SQLite and PostgreSQL.

The migrations in ``central/migrations`` create exactly these tables; a test
compares the two so they cannot drift.
"""

import datetime as dt
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)


class UtcDateTime(sa.types.TypeDecorator[dt.datetime]):
    """An aware UTC datetime on both engines (SQLite keeps no zone, so we add it back)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class RetireeStatus(StrEnum):
    """Where a retiree stands in the scheme."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    DECEASED = "deceased"
    TERMINATED = "terminated"


class HoldReason(StrEnum):
    """Why a payment hold was placed; certification holds are released by a passed result."""

    CERTIFICATION_OVERDUE = "certification_overdue"
    MANUAL = "manual"


CERTIFICATION_HOLDS = (HoldReason.CERTIFICATION_OVERDUE.value,)

retirees = sa.Table(
    "retirees",
    metadata,
    sa.Column("id_number", sa.String(18), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("sex", sa.String(1), nullable=False),
    sa.Column("birth_date", sa.Date, nullable=False),
    sa.Column("community", sa.String(100)),
    sa.Column("monthly_amount_cents", sa.BigInteger),
    sa.Column("bank_account", sa.String(34)),
    sa.Column("account_name", sa.String(100)),
    sa.Column("status", sa.String(16), nullable=False, server_default=RetireeStatus.ACTIVE.value),
    sa.Column("retirement_date", sa.Date),
    sa.Column("certified_until", sa.Date),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

results = sa.Table(
    "results",
    metadata,
    sa.Column("result_id", sa.Uuid, primary_key=True),
    sa.Column("device_id", sa.String(63), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("kid", sa.String(64), nullable=False),
    sa.Column(
        "retiree_id", sa.String(18), sa.ForeignKey("retirees.id_number"), nullable=False, index=True
    ),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("device_time", UtcDateTime, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("applied", sa.Boolean, nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("template_sealed", sa.Text),
    sa.UniqueConstraint("device_id", "seq"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("retiree_id", sa.String(18), index=True),
    sa.Column("result_id", sa.Uuid),
    sa.Column("device_id", sa.String(63)),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
)

holds = sa.Table(
    "holds",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column(
        "retiree_id", sa.String(18), sa.ForeignKey("retirees.id_number"), nullable=False, index=True
    ),
    sa.Column("reason", sa.String(40), nullable=False),
    sa.Column("since", UtcDateTime, nullable=False),
    sa.Column("released_at", UtcDateTime),
    sa.Column("released_by_result", sa.Uuid),
)

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("received_at", UtcDateTime, nullable=False, index=True),
    sa.Column("topic", sa.String(256), nullable=False),
    sa.Column("device_id", sa.String(63)),
    sa.Column("kid", sa.String(64)),
    sa.Column("result_id", sa.Uuid),
    sa.Column("reason", sa.String(40), nullable=False, index=True),
    sa.Column("detail", sa.String(500), nullable=False),
    sa.Column("acked", sa.Boolean, nullable=False),
    sa.Column("payload_size", sa.Integer, nullable=False),
    sa.Column("payload_sha256", sa.String(64), nullable=False),
    sa.Column("payload_head", sa.LargeBinary, nullable=False),
)
