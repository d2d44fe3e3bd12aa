"""The console's tables, on central's one ``metadata`` (migrations 0020-0021).

``coverage_counts`` is kept by triggers on ``retirees`` (every writer, SQL by hand too):
how many retirees per community, status and ``certified_until`` (``NEVER`` for none), so
the dashboard sums a few thousand rows instead of scanning the roster.
``coverage_history`` keeps each day's coverage per community for the trend, and
``review_decisions`` each review item's decision and reason.
"""

import datetime as dt

import sqlalchemy as sa

from central.store.schema import UtcDateTime, metadata

NEVER = dt.date(1, 1, 1)
"""``coverage_counts.certified_until`` of retirees never certified."""
NO_COMMUNITY = "(none)"

coverage_counts = sa.Table(
    "coverage_counts",
    metadata,
    sa.Column("community", sa.String(100), primary_key=True),
    sa.Column("status", sa.String(16), primary_key=True),
    sa.Column("certified_until", sa.Date, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)

coverage_history = sa.Table(
    "coverage_history",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("community", sa.String(100), primary_key=True),
    sa.Column("retirees", sa.BigInteger, nullable=False),
    sa.Column("certified", sa.BigInteger, nullable=False),
    sa.Column("due", sa.BigInteger, nullable=False),
    sa.Column("overdue", sa.BigInteger, nullable=False),
)

review_decisions = sa.Table(
    "review_decisions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("queue", sa.String(24), nullable=False),
    sa.Column("item", sa.String(64), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("staff_id", sa.String(100), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("queue", "item"),
)

# today's certifications read ``results`` by the time they arrived (migration 0020); a
# community's drill-down list reads retirees in ID order (migration 0021)
sa.Index("ix_results_received_at", metadata.tables["results"].c.received_at)
sa.Index(
    "ix_retirees_community_id_number",
    metadata.tables["retirees"].c.community,
    metadata.tables["retirees"].c.id_number,
)
