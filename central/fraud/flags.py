"""Fraud flags: duplicate faces (``central.fraud.duplicates``) and passes for deceased or
terminated retirees (raised by ingest), for staff to review."""

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from central.store import schema

_flags = schema.fraud_flags


def list_flags(
    engine: Engine, kind: str | None = None, limit: int = 100
) -> list[dict[str, object]]:
    """Fraud flags, newest first."""
    query = sa.select(_flags).order_by(_flags.c.id.desc()).limit(limit)
    if kind:
        query = query.where(_flags.c.kind == kind)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
