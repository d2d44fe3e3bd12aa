"""Central's tables (SQLAlchemy Core), one schema for SQLite and PostgreSQL.

The migrations in ``central/store/migrations`` create exactly these tables; a test
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
    """Why a row of ``holds`` was placed: staff decisions. A certification hold is no row
    but a payment run's line (``central.payments.runs``); rows with reason
    ``certification_overdue`` are history from before migration 0009."""

    MANUAL = "manual"


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
    # The roster revision the payable columns below are valid from (see roster_versions);
    # set by the database's triggers, never by the code. Indexed: the rows written since a
    # run are a short range (a run's roster totals, diff).
    sa.Column("roster_rev", sa.BigInteger, index=True),
    # Contact details (migration 0030; not payable, so not versioned): E.164 phone numbers,
    # ``language`` zh or en (None: zh), ``reminders_opt_out`` None = not opted out.
    sa.Column("phone", sa.String(16)),
    sa.Column("email", sa.String(254)),
    sa.Column("kin_name", sa.String(100)),
    sa.Column("kin_phone", sa.String(16)),
    sa.Column("language", sa.String(2)),
    sa.Column("reminders_opt_out", sa.Boolean),
)

# -- the versioned roster: what a stored payment run paid, after the roster moved on ----
#
# A payment run stores only its non-``pay`` lines and the roster revision it read; its
# ``pay`` lines are the retirees as they were at that revision. The database keeps that
# true for every writer (roster import, ingest, SQL by hand) with triggers made by
# migration 0005: a change to a payable column of a row an earlier run may have read
# (``roster_rev`` < the open revision) first copies the old values into roster_versions,
# valid from the row's revision up to the open one; an inserted row takes the open
# revision; a deleted row keeps its last version. A run reads revision R = the open one
# and opens R + 1, so a row written after the run never looks valid at R.

PAYABLE = ("name", "monthly_amount_cents", "bank_account", "account_name", "certified_until")
"""The roster columns a stored run's implied ``pay`` lines are read from (versioned)."""

roster_clock = sa.Table(
    "roster_clock",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # one row: id 1
    sa.Column("revision", sa.BigInteger, nullable=False),  # the open revision writes take
)

roster_versions = sa.Table(
    "roster_versions",
    metadata,
    sa.Column("retiree_id", sa.String(18), primary_key=True),
    sa.Column("valid_from", sa.BigInteger, primary_key=True),
    sa.Column("valid_to", sa.BigInteger, nullable=False, index=True),  # exclusive
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("monthly_amount_cents", sa.BigInteger),
    sa.Column("bank_account", sa.String(34)),
    sa.Column("account_name", sa.String(100)),
    sa.Column("certified_until", sa.Date),
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
    sa.Column("vein_template_sealed", sa.Text),
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
    sa.Column("released_by_result", sa.Uuid),  # the pass that ended it (before 0009)
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

# -- payments, registries, bank files, biometric duplicates (issue 5) --------------------


class RegistryKind(StrEnum):
    """Which external registry a record comes from."""

    DEATH = "death"
    PRISON = "prison"


registry_records = sa.Table(
    "registry_records",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("id_number", sa.String(18), nullable=False),
    sa.Column("birth_date", sa.Date, nullable=False),
    sa.Column("name", sa.String(100)),
    sa.Column("start_date", sa.Date, nullable=False),  # death date / imprisonment start
    sa.Column("end_date", sa.Date),  # release date (prison); first day of freedom
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("imported_at", UtcDateTime, nullable=False),
    sa.Column("retiree_id", sa.String(18), index=True),  # matched on ID number AND birth date
    sa.UniqueConstraint("kind", "id_number", "start_date"),
)

payment_runs = sa.Table(
    "payment_runs",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("period", sa.String(7), nullable=False, unique=True),  # YYYY-MM
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("policy", sa.JSON, nullable=False),
    sa.Column("status", sa.String(12), nullable=False),  # computed / sent / reconciled
    sa.Column("summary", sa.JSON, nullable=False),
    sa.Column("file_sha256", sa.String(64)),
    # The roster revision the run read; its ``pay`` lines are implied by it. None: a run
    # made before migration 0005, every line stored (payable columns as at revision 0).
    sa.Column("roster_revision", sa.BigInteger),
)

payment_lines = sa.Table(
    "payment_lines",
    metadata,
    # A run's stored lines: its hold, stop and resume lines (runs before migration 0005:
    # every line); the pay lines are implied by the versioned roster (see above). Arrears
    # are lines too: each ``certification_overdue`` hold line is an arrears month, settled
    # by the retiree's next ``resume`` line (the ``arrears`` view of migration 0006 lists
    # them with ``held_in_run`` and ``settled_in_run``).
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column(
        "run_id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        sa.ForeignKey("payment_runs.id"),
        nullable=False,
    ),
    sa.Column("retiree_id", sa.String(18), nullable=False),
    sa.Column("decision", sa.String(8), nullable=False),  # pay / resume / hold / stop
    sa.Column("reason", sa.String(24)),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("arrears_cents", sa.BigInteger, nullable=False),
    sa.Column("payable_cents", sa.BigInteger, nullable=False),
    sa.Column("basis_date", sa.Date),
    # What the retiree is owed after this line: unpaid arrears, this month's included when
    # held for certification; 0 once paid. The next run reads it (migration 0006).
    sa.Column("owed_cents", sa.BigInteger, nullable=False, server_default="0"),
    # (run, retiree): a run's lines read with the roster, one probe per retiree
    sa.Index("ix_payment_lines_run_id_retiree_id", "run_id", "retiree_id", unique=True),
)

bank_returns = sa.Table(
    "bank_returns",
    metadata,
    sa.Column("run_id", sa.BigInteger, primary_key=True),
    sa.Column("line", sa.Integer, primary_key=True),
    sa.Column("retiree_id", sa.String(18), nullable=False),
    sa.Column("bank_account", sa.String(34), nullable=False),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),  # paid / failed
    sa.Column("note", sa.String(200)),
    sa.Column("imported_at", UtcDateTime, nullable=False),
)

face_templates = sa.Table(
    "face_templates",
    metadata,
    sa.Column("result_id", sa.Uuid, primary_key=True),
    sa.Column("retiree_id", sa.String(18), nullable=False, index=True),
    sa.Column("model", sa.String(64)),
    sa.Column("vector", sa.LargeBinary),  # AES-256-GCM(nonce || ciphertext) of float32[dim]
    sa.Column("problem", sa.String(200)),  # why a sealed template could not be indexed
    sa.Column("indexed_at", UtcDateTime, nullable=False),
)

fraud_flags = sa.Table(
    "fraud_flags",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False, index=True),
    sa.Column("retiree_id", sa.String(18), nullable=False),
    sa.Column("other_retiree_id", sa.String(18)),
    sa.Column("result_id", sa.Uuid),
    sa.Column("other_result_id", sa.Uuid),
    sa.Column("score", sa.Float),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("status", sa.String(12), nullable=False),  # open / cleared / confirmed
    sa.UniqueConstraint("kind", "retiree_id", "other_retiree_id", "result_id"),
)
