"""The proposals room's tables, on ``central.store.schema.metadata`` (migration 0015;
the apply lease: 0050).

``proposals`` holds one change to money or eligibility and where it stands;
``proposal_steps`` one row per person who acted on it (unique per proposal and person,
and per proposal and level: the database itself refuses one person twice and two
people at one level); ``proposal_rows`` the per-retiree diff of a roster import.
"""

import sqlalchemy as sa

from central.store.schema import UtcDateTime, metadata

SERIAL = sa.BigInteger().with_variant(sa.Integer, "sqlite")

proposals = sa.Table(
    "proposals",
    metadata,
    sa.Column("id", SERIAL, primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("status", sa.String(12), nullable=False, index=True),  # open/applied/rejected
    sa.Column("levels", sa.Integer, nullable=False),  # people needed, entry included
    sa.Column("done", sa.Integer, nullable=False),  # levels passed so far (1 after entry)
    sa.Column("target", sa.String(64), nullable=False),  # a retiree, a period, a file
    sa.Column("summary", sa.String(500), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),  # SHA-256 of the data it was made on
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("decided_at", UtcDateTime),
    sa.Column("reason", sa.String(500)),  # why rejected
    sa.Column("result", sa.JSON),  # what applying it did
    # while ``applying`` (migration 0050): the lease of whoever applies it, until when
    sa.Column("apply_token", sa.String(32)),
    sa.Column("apply_by", sa.String(100)),
    sa.Column("apply_until", UtcDateTime),
)

proposal_steps = sa.Table(
    "proposal_steps",
    metadata,
    sa.Column("proposal_id", SERIAL, sa.ForeignKey("proposals.id"), primary_key=True),
    sa.Column("level", sa.Integer, primary_key=True),
    sa.Column("staff_id", sa.String(100), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("action", sa.String(12), nullable=False),  # enter/recheck/approve/reject
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.UniqueConstraint("proposal_id", "staff_id"),
)

proposal_rows = sa.Table(
    "proposal_rows",
    metadata,
    sa.Column("proposal_id", SERIAL, sa.ForeignKey("proposals.id"), primary_key=True),
    sa.Column("line", sa.Integer, primary_key=True),  # the roster file's line
    sa.Column("retiree_id", sa.String(18), nullable=False),
    sa.Column("change", sa.String(8), nullable=False),  # added / changed
    sa.Column("before", sa.JSON),  # the fields it changes, as they were (None: added)
    sa.Column("after", sa.JSON, nullable=False),  # the values it writes
)
