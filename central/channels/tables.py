"""The phone channel's tables (on central's one schema, created by migration 0035).

``phone_codes``: the current code of each ID number asked for, as an HMAC only, with its
expiry and wrong tries (rows for ID numbers nobody holds too, and for ID numbers checked
without a code: a stand-in no code matches, expired; they all behave alike).
``phone_verifications``: every code a remote terminal checked right (ID number, device,
time), kept as the audit trail ingest checks a ``mobile`` result against.
``phone_code_log``: one row per code sent or checked, per ID number, phone and client
address (keys hashed), for the rate limits; rows older than a day are dropped.
"""

import sqlalchemy as sa

from central.store.schema import UtcDateTime, metadata

phone_codes = sa.Table(
    "phone_codes",
    metadata,
    sa.Column("id_number", sa.String(18), primary_key=True),
    sa.Column("code_mac", sa.String(64), nullable=False),
    sa.Column("tries", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
)

phone_code_log = sa.Table(
    "phone_code_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),  # id / phone / client / check
    sa.Column("key", sa.String(64), nullable=False),  # SHA-256 hex of the ID, number, address
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Index("ix_phone_code_log_kind_key_at", "kind", "key", "at"),
)

phone_verifications = sa.Table(
    "phone_verifications",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("retiree_id", sa.String(18), nullable=False),
    sa.Column("device_id", sa.String(63), nullable=False),
    sa.Column("verified_at", UtcDateTime, nullable=False),
    sa.Index("ix_phone_verifications_retiree_id_device_id", "retiree_id", "device_id"),
)
