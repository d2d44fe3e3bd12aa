"""Contact details on the roster: phone, e-mail, next of kin, language, reminder opt-out.

Not payable, so not versioned: the triggers of migration 0005 fire only on updates of the
payable columns, and these are left out of them. Plain ``ADD COLUMN`` on both engines.

Revision ID: 0030
Revises: 0025
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("phone", sa.String(16)),
    ("email", sa.String(254)),
    ("kin_name", sa.String(100)),
    ("kin_phone", sa.String(16)),
    ("language", sa.String(2)),
    ("reminders_opt_out", sa.Boolean),
)


def upgrade() -> None:
    """The six columns, all nullable (NULL: not given)."""
    for name, kind in _COLUMNS:
        op.add_column("retirees", sa.Column(name, kind))


def downgrade() -> None:
    """Drop them (plain ALTER TABLE: SQLite >= 3.35)."""
    for name, _ in reversed(_COLUMNS):
        op.execute(f"ALTER TABLE retirees DROP COLUMN {name}")
