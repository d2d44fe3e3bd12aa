"""The staff room's tables: accounts, the staff CA, staff certificates, the audit chain,
second factors and their recovery codes."""

import sqlalchemy as sa

from central.store.schema import UtcDateTime, metadata

staff = sa.Table(
    "staff",
    metadata,
    sa.Column("staff_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("roles", sa.JSON, nullable=False),  # sorted list of Role values
    sa.Column("communities", sa.JSON, nullable=False),  # a coordinator's communities
    sa.Column("sites", sa.JSON, nullable=False),  # sites where they may assist at a terminal
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("failed_logins", sa.Integer, nullable=False),
    sa.Column("locked", sa.Boolean, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

staff_ca = sa.Table(
    "staff_ca",
    metadata,
    # The staff CA's certificate, pinned: sign-in trusts this one and no file.
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # one row: id 1
    sa.Column("cert_pem", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

staff_certs = sa.Table(
    "staff_certs",
    metadata,
    sa.Column("serial", sa.String(40), primary_key=True),  # lower-case hex
    sa.Column("staff_id", sa.String(64), sa.ForeignKey("staff.staff_id"), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
    sa.Column("not_before", UtcDateTime, nullable=False),
    sa.Column("not_after", UtcDateTime, nullable=False),
    sa.Column("issued_at", UtcDateTime, nullable=False),
    sa.Column("issued_by", sa.String(64), nullable=False),
    sa.Column("revoked_at", UtcDateTime),
    sa.Column("revoked_by", sa.String(64)),
    sa.Column("revoke_reason", sa.String(200)),
    sa.Index("ix_staff_certs_staff_id", "staff_id"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    # Append-only, chained: hash = SHA-256(prev_hash || canonical(entry)); see audit.py.
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("staff_id", sa.String(64), nullable=False),
    sa.Column("roles", sa.String(200), nullable=False),  # comma-separated, sorted
    sa.Column("action", sa.String(64), nullable=False, index=True),
    sa.Column("target", sa.String(200), nullable=False),
    sa.Column("before", sa.Text),  # canonical JSON, hashed as stored
    sa.Column("after", sa.Text),
    sa.Column("address", sa.String(64)),
    sa.Column("cert_serial", sa.String(40)),
    sa.Column("via", sa.String(16), nullable=False),
    sa.Column("event_id", sa.BigInteger, unique=True),  # the ``events`` row this entry seals
    sa.Column("prev_hash", sa.String(64), nullable=False, unique=True),  # one successor each
    sa.Column("hash", sa.String(64), nullable=False),
)

staff_otp = sa.Table(
    "staff_otp",
    metadata,
    # A member's TOTP second factor (otp.py): the secret AES-256-GCM-encrypted with
    # [staff] otp_key_file, pending until a first code confirms it.
    sa.Column("staff_id", sa.String(64), sa.ForeignKey("staff.staff_id"), primary_key=True),
    sa.Column("secret", sa.LargeBinary, nullable=False),  # nonce || ciphertext
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("confirmed_at", UtcDateTime),  # None: pending
    sa.Column("last_step", sa.BigInteger),  # the last time step a code was accepted for
    sa.Column("failed", sa.Integer, nullable=False),  # wrong codes in a row
)

staff_otp_recovery = sa.Table(
    "staff_otp_recovery",
    metadata,
    # A member's unused recovery codes (recovery.py): only their keyed hashes, one row each;
    # a code used is deleted.
    sa.Column("staff_id", sa.String(64), sa.ForeignKey("staff.staff_id"), primary_key=True),
    sa.Column("code_hash", sa.String(64), primary_key=True),  # HMAC-SHA256, hex
    sa.Column("created_at", UtcDateTime, nullable=False),
)
