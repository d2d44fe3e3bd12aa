"""Where a retiree stands: certified until, next due date, last certification, this
month's payment decision. One function (``status_of``) for every channel that shows it:
the kiosk asks over MQTT (``StatusAnswers``, a handler of the terminal request service),
the phone page after its one-time code.

Minimal on purpose: a held payment says why only when the reason is a missed
certification (what the retiree can fix); prison, death or staff holds are ``hold`` or
``stop`` without a reason.
"""

import datetime as dt
import json
import zoneinfo
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from central.certification.settings import Policy
from central.payments import runs
from central.payments.period import Period
from central.store import schema
from protocol import lookups, messages
from protocol.errors import MessageError

_r, _res = schema.retirees, schema.results
SiteOf = Callable[[str], str | None]
"""The site of the device whose certificate has this ``kid`` (None: unknown now)."""


@dataclass(frozen=True)
class Status:
    """One retiree's status (see the module docstring)."""

    certified_until: dt.date | None
    next_due: dt.date | None
    window_opens: dt.date | None
    last_certified_on: dt.date | None
    last_channel: str | None
    last_place: str | None
    payment_period: str | None
    payment_decision: str | None
    payment_reason: str | None


def status_of(
    conn: Connection, id_number: str, policy: Policy, site_of: SiteOf, today: dt.date
) -> Status | None:
    """The status of retiree ``id_number`` on ``today``; None if no such retiree."""
    until = conn.execute(sa.select(_r.c.certified_until).where(_r.c.id_number == id_number)).first()
    if until is None:
        return None
    certified_until: dt.date | None = until[0]
    last = conn.execute(
        sa.select(_res.c.device_time, _res.c.channel, _res.c.kid)
        .where(
            _res.c.retiree_id == id_number,
            _res.c.applied.is_(True),
            _res.c.decision == messages.Decision.PASS.value,
        )
        .order_by(_res.c.device_time.desc())
        .limit(1)
    ).first()
    zone = zoneinfo.ZoneInfo(policy.timezone)
    period = Period.of(today)
    decision = reason = None
    run = conn.execute(
        sa.select(schema.payment_runs).where(schema.payment_runs.c.period == str(period))
    ).first()
    if run is not None:
        lines = runs.run_lines(run, retiree_ids=[id_number])
        line = conn.execute(sa.select(lines.c.decision, lines.c.reason)).first()
        if line is not None:
            decision = line.decision
            if line.reason == runs.Reason.CERTIFICATION_OVERDUE:
                reason = line.reason
    return Status(
        certified_until=certified_until,
        next_due=certified_until,
        window_opens=(
            certified_until - dt.timedelta(days=policy.reminder_days) if certified_until else None
        ),
        last_certified_on=last.device_time.astimezone(zone).date() if last else None,
        last_channel=last.channel if last else None,
        last_place=site_of(last.kid) if last else None,
        payment_period=str(period) if decision else None,
        payment_decision=decision,
        payment_reason=reason,
    )


class StatusAnswers:
    """Answers a terminal's ``status`` request (a handler of the template request service,
    which has checked the device, its response topic, the size and the rate already)."""

    def __init__(self, engine: Engine, policy: Policy, site_of: SiteOf) -> None:
        self.engine, self.policy, self.site_of = engine, policy, site_of

    def __call__(self, device_id: str, payload: bytes) -> messages.Reply:
        try:
            request = messages.decode(lookups.StatusRequest, payload)
        except MessageError as exc:
            error = f"bad_request: {exc}"[:200]
            return messages.Reply(status="error", data={"device_id": device_id}, error=error)
        ids = {
            "request_id": request.request_id,
            "device_id": device_id,
            "retiree_id": request.retiree_id,
        }
        today = dt.datetime.now(zoneinfo.ZoneInfo(self.policy.timezone)).date()
        with self.engine.connect() as conn:
            status = status_of(conn, request.retiree_id, self.policy, self.site_of, today)
        if status is None:
            return messages.Reply(status="error", data=ids, error="unknown_retiree")
        fields: dict[str, Any] = ids | asdict(status)
        data: dict[str, Any] = json.loads(lookups.StatusData(**fields).model_dump_json())
        return messages.Reply(status="ok", data=data)
