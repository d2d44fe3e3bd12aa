"""Certification holds are the payment runs' lines, no longer rows of ``holds``.

Until now each run opened a ``certification_overdue`` hold (and a ``hold_placed`` event)
for every newly held retiree, and ingest released it (``hold_released``) on the next
pass. Both repeated what ``certified_until`` and the run's lines already say; a run now
derives the hold each month, as it does for prison and death. The holds this leaves open
would never be released: they are released here, each with a ``hold_released`` event
naming this migration.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_holds = sa.table(
    "holds",
    sa.column("id", sa.BigInteger),
    sa.column("retiree_id", sa.String),
    sa.column("reason", sa.String),
    sa.column("released_at", sa.DateTime(timezone=True)),
)
_events = sa.table(
    "events",
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("kind", sa.String),
    sa.column("retiree_id", sa.String),
    sa.column("actor", sa.String),
    sa.column("detail", sa.JSON),
)
_OPEN = sa.and_(_holds.c.reason == "certification_overdue", _holds.c.released_at.is_(None))


def upgrade() -> None:
    """Release the open certification holds, an event each."""
    conn = op.get_bind()
    now = dt.datetime.now(dt.UTC)
    stamp = now.replace(tzinfo=None) if conn.dialect.name == "sqlite" else now
    open_holds = conn.execute(sa.select(_holds.c.id, _holds.c.retiree_id).where(_OPEN)).all()
    if not open_holds:
        return
    conn.execute(
        _events.insert(),
        [
            {
                "at": stamp,
                "kind": "hold_released",
                "retiree_id": retiree,
                "actor": "migration 0009",
                "detail": {"hold_id": hold, "reason": "certification_overdue"},
            }
            for hold, retiree in open_holds
        ],
    )
    conn.execute(_holds.update().where(_OPEN).values(released_at=stamp))


def downgrade() -> None:
    """Nothing to undo: the earlier code's next run opens a hold again for every retiree
    it still holds for certification."""
