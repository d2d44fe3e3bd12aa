"""Manual payment holds: staff place them, staff release them, one event each.

Staff do it through a proposal (``central.proposals``), which calls ``place_in`` and
``release_in`` in its approving transaction; ``place`` and ``release`` are the same at
once, for setting up a database.

A manual hold keeps a retiree's payment on hold from the next run until released (rule 7
of ``central.payments.runs``), with no back-pay for the months held. The staff member's note
(why) is kept in the event. Holds for a missed certification are no rows here but the
runs' lines (``central.payments.runs``).
"""

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from central.store import schema
from common.errors import LifecertError

_h, _r = schema.holds, schema.retirees
MANUAL = schema.HoldReason.MANUAL.value


class UnknownRetireeError(LifecertError, LookupError):
    """No retiree has this ID number."""


def _lock(conn: Connection, retiree_id: str) -> None:
    """Lock the retiree's row (an unknown ID is refused), so a hold lands between, never
    inside, ingest's batches, which lock the rows they apply to."""
    found = conn.execute(
        sa.select(_r.c.id_number).where(_r.c.id_number == retiree_id).with_for_update()
    ).first()
    if found is None:
        raise UnknownRetireeError(f"no retiree {retiree_id}: check the number or import the roster")


def place(
    engine: Engine, retiree_id: str, actor: str, note: str = "", now: dt.datetime | None = None
) -> int:
    """Open a manual hold, with a ``hold_placed`` event carrying ``note``; the hold's id."""
    with engine.begin() as conn:
        return place_in(conn, retiree_id, actor, note, now or dt.datetime.now(dt.UTC))


def place_in(conn: Connection, retiree_id: str, actor: str, note: str, now: dt.datetime) -> int:
    """``place`` in ``conn``'s transaction."""
    _lock(conn, retiree_id)
    hold_id = conn.execute(
        _h.insert().values(retiree_id=retiree_id, reason=MANUAL, since=now).returning(_h.c.id)
    ).scalar_one()
    conn.execute(
        schema.events.insert().values(
            at=now,
            kind="hold_placed",
            retiree_id=retiree_id,
            actor=actor,
            detail={"hold_id": hold_id, "reason": MANUAL, "note": note},
        )
    )
    return int(hold_id)


def release(
    engine: Engine, retiree_id: str, actor: str, note: str = "", now: dt.datetime | None = None
) -> int:
    """Release a retiree's open manual holds, a ``hold_released`` event (with ``note``) each;
    how many."""
    with engine.begin() as conn:
        return release_in(conn, retiree_id, actor, note, now or dt.datetime.now(dt.UTC))


def open_holds(conn: Connection, retiree_id: str) -> list[int]:
    """The ids of a retiree's open manual holds."""
    return [
        int(i)
        for i in conn.execute(
            sa.select(_h.c.id)
            .where(_h.c.retiree_id == retiree_id, _h.c.reason == MANUAL, _h.c.released_at.is_(None))
            .order_by(_h.c.id)
        ).scalars()
    ]


def release_in(conn: Connection, retiree_id: str, actor: str, note: str, now: dt.datetime) -> int:
    """``release`` in ``conn``'s transaction."""
    _lock(conn, retiree_id)
    released = (
        conn.execute(
            _h.update()
            .where(_h.c.retiree_id == retiree_id, _h.c.reason == MANUAL, _h.c.released_at.is_(None))
            .values(released_at=now)
            .returning(_h.c.id)
        )
        .scalars()
        .all()
    )
    if released:
        conn.execute(
            schema.events.insert(),
            [
                {
                    "at": now,
                    "kind": "hold_released",
                    "retiree_id": retiree_id,
                    "actor": actor,
                    "detail": {"hold_id": hold, "reason": MANUAL, "note": note},
                }
                for hold in released
            ],
        )
    return len(released)
