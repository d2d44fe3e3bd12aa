"""Every step of a proposal, recorded: who (and with which role, from where), what, the
state before and after. Written to ``events`` in the step's own transaction."""

import datetime as dt
import json
from typing import Any

from sqlalchemy.engine import Connection

from central.staff.identity import Actor
from central.store import schema


def jsonable(value: Any) -> Any:
    """``value`` with dates and other non-JSON values as text."""
    return json.loads(json.dumps(value, default=str))


def record(
    conn: Connection,
    actor: Actor,
    action: str,
    target: str,
    before: Any = None,
    after: Any = None,
    *,
    at: dt.datetime | None = None,
) -> None:
    """One audit entry for ``action`` on ``target`` by ``actor``."""
    conn.execute(
        schema.events.insert().values(
            at=at or dt.datetime.now(dt.UTC),
            kind=action[:40],
            actor=actor.staff_id,
            detail={
                "target": target,
                "roles": sorted(actor.roles),
                "via": actor.via,
                "address": actor.address,
                "cert_serial": actor.cert_serial,
                "before": jsonable(before),
                "after": jsonable(after),
            },
        )
    )
