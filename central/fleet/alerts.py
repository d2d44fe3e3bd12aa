"""Alert rules over the fleet's health, alerts stored once, cleared, acknowledged, delivered.

``firing`` is the pure rule set: given each terminal's state, the devices whose config lags
their desired one, the device certificates and the CRL's ``nextUpdate``, which ``(rule,
subject)`` pairs fire now and why. ``Alerts.check`` compares that with the open alerts: a
new pair is stored (raised once, not at every check), a pair no longer firing is cleared.
An operator acknowledges an alert by id (``lifecert-central fleet ack``); acknowledging
does not clear it. Each raising, acknowledgement and clearing is put in the notify outbox
in the same transaction, one message per channel keyed ``alert:<id>:<event>:<channel>``:
the outbox's sender delivers it at least once, retrying a dead webhook until it answers (or
the message is a dead letter), and :func:`list_alerts` shows how far each delivery got.
"""

import datetime as dt
import logging
import zoneinfo
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography import x509
from cryptography.x509.oid import NameOID
from sqlalchemy.engine import Engine

from central.fleet import desired
from central.fleet.health import SILENT, UNKNOWN, DeviceState
from central.fleet.health_schema import FLEET_WIDE, fleet_alerts
from central.fleet.health_settings import AlertSettings
from central.notify import outbox
from central.notify.base import Message
from common.errors import LifecertError
from protocol import topics

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (rule, subject)
EVENTS = ("raised", "acked", "cleared")
RECIPIENTS = {"log": "log", "webhook": "[alerts] webhook_url"}
"""The outbox recipient of each ``[alerts] notify`` channel (the webhook's URL is the
notifier's, so that a token in it stays out of the database and a new URL takes effect
for the messages still waiting)."""
_DOWN = {topics.STATUS_OFFLINE, topics.STATUS_STOPPED, SILENT}


class AlertError(LifecertError, ValueError):
    """An alert operation that cannot be done (no such alert, already acknowledged)."""


@dataclass(frozen=True)
class DeviceCert:
    """An enrolled device's certificate, as far as alerts care."""

    device_id: str
    serial: int
    not_after: dt.datetime
    site: str = topics.DEFAULT_SITE


@dataclass(frozen=True)
class Trust:
    """The fleet's certificates and CRL as the alert rules see them."""

    certs: tuple[DeviceCert, ...]
    revoked: frozenset[int]
    crl_next_update: dt.datetime | None
    crl_problem: str | None = None


def read_trust(devices_dir: Path, crl_file: Path) -> Trust:
    """Every ``<device_id>.pem`` in the devices folder and the CRL's ``nextUpdate``."""
    certs = []
    for path in sorted(devices_dir.glob("*.pem")):
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError):
            continue
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        units = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
        site = str(units[0].value) if len(units) == 1 else topics.DEFAULT_SITE
        if names and names[0].value == path.stem:
            certs.append(DeviceCert(path.stem, cert.serial_number, cert.not_valid_after_utc, site))
    try:
        crl = x509.load_pem_x509_crl(crl_file.read_bytes())
    except (OSError, ValueError) as exc:
        return Trust(tuple(certs), frozenset(), None, f"CRL {crl_file} unreadable: {exc}")
    revoked = frozenset(r.serial_number for r in crl)
    return Trust(tuple(certs), revoked, crl.next_update_utc)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} days"


def _device_rules(
    d: DeviceState, now: dt.datetime, s: AlertSettings, is_open: bool, already: set[Key]
) -> Iterable[tuple[Key, str]]:
    state = d.state(now, s.silent_after_s)
    since = d.since()
    if state in _DOWN and since is not None:
        down_s = (now - since).total_seconds()
        late = down_s >= s.offline_after_s
        if (late and is_open) or ("offline", d.device_id) in already:
            word = {SILENT: "silent (no telemetry)", topics.STATUS_STOPPED: "stopped"}.get(
                state, "offline"
            )
            when = f"{since:%Y-%m-%d %H:%M} UTC"
            yield ("offline", d.device_id), f"{word} for {_age(down_s)}, since {when}"
    t = d.telemetry
    if t is None or state == UNKNOWN:
        return
    pending, age = t.get("outbox_pending", 0), t.get("oldest_pending_s")
    if pending > s.backlog_max or (age is not None and age > s.backlog_age_max_s):
        oldest = "" if age is None else f", oldest waiting {_age(age)}"
        yield ("backlog", d.device_id), f"{pending} result(s) undelivered{oldest}"
    if d.clock_skew_s is not None and abs(d.clock_skew_s) > s.clock_skew_max_s:
        way = "ahead of" if d.clock_skew_s > 0 else "behind"
        yield ("clock_skew", d.device_id), f"clock {abs(d.clock_skew_s):.0f} s {way} central's"
    free = t.get("disk_free_bytes")
    if free is not None and free < s.disk_free_min_mb * 1_000_000:
        yield ("disk_low", d.device_id), f"{free / 1_000_000:.0f} MB free (< {s.disk_free_min_mb})"
    failing = [c for c in t.get("devices", ()) if not c.get("ok")]
    if failing:
        what = "; ".join(f"{c['name']}: {c.get('detail') or 'failed'}" for c in failing)
        yield ("self_test", d.device_id), f"self-check failing: {what}"[:500]


def _drift(lag: desired.Lag, now: dt.datetime, s: AlertSettings, already: set[Key]) -> str | None:
    """Why ``lag`` is a ``config_drift`` alert, or None: not for long enough (once raised it
    stays open until the terminal runs its desired config, a newer desired one included)."""
    late = (now - lag.since).total_seconds()
    if late < s.config_drift_after_s and ("config_drift", lag.device_id) not in already:
        return None
    runs = "nothing yet" if lag.reported_version is None else f"version {lag.reported_version}"
    refused = f"; it refused: {' '.join(lag.refused.split())}" if lag.refused else ""  # one line
    return (
        f"desired config version {lag.desired_version} not running after {_age(late)}: "
        f"the terminal reports {runs}{refused}"
    )[:500]


def firing(
    devices: Sequence[DeviceState],
    trust: Trust,
    now: dt.datetime,
    settings: AlertSettings,
    zone: dt.tzinfo,
    already: set[Key] = frozenset(),  # type: ignore[assignment]
    lags: Sequence[desired.Lag] = (),
) -> dict[Key, str]:
    """Which ``(rule, subject)`` fire at ``now`` and why (``already``: the open alerts; an
    offline alert stays open out of hours until the terminal is back; ``lags``: the devices
    whose reported config is not their desired one)."""
    out: dict[Key, str] = {}
    is_open = settings.is_open(now.astimezone(zone))
    enrolled = {c.device_id for c in trust.certs if c.serial not in trust.revoked}
    for d in devices:
        if d.device_id in enrolled:  # a revoked or removed terminal is no longer watched
            out.update(_device_rules(d, now, settings, is_open, already))
    for lag in lags:
        if lag.device_id in enrolled and (why := _drift(lag, now, settings, already)):
            out["config_drift", lag.device_id] = why
    horizon = now + dt.timedelta(days=settings.cert_expiry_days)
    newest: dict[str, DeviceCert] = {}
    for c in trust.certs:
        if c.serial not in trust.revoked and (
            c.device_id not in newest or c.not_after > newest[c.device_id].not_after
        ):
            newest[c.device_id] = c
    for c in newest.values():
        if c.not_after <= horizon:
            verb = "expired" if c.not_after <= now else "expires"
            out["cert_expiring", c.device_id] = (
                f"certificate {c.serial:x} {verb} {c.not_after:%Y-%m-%d %H:%M} UTC"
            )
    if trust.crl_problem:
        out["crl_next_update", FLEET_WIDE] = trust.crl_problem
    elif trust.crl_next_update is not None and trust.crl_next_update <= now + dt.timedelta(
        days=settings.crl_next_update_days
    ):
        out["crl_next_update", FLEET_WIDE] = (
            f"CRL nextUpdate {trust.crl_next_update:%Y-%m-%d %H:%M} UTC: re-issue it "
            "(lifecert fleet crl) before the broker refuses every terminal"
        )
    return out


def delivery_key(alert_id: int, event: str, channel: str) -> str:
    """The outbox key of alert ``alert_id``'s ``event`` on ``channel`` (and the webhook's
    ``Idempotency-Key``)."""
    return f"alert:{alert_id}:{event}:{channel}"


def messages(alert: dict[str, Any], event: str, channels: Sequence[str]) -> list[Message]:
    """One message per channel about ``alert``'s ``event``; an ``acked`` one names who
    acknowledged it (``acked_by``)."""
    subject = alert["subject"]
    where = "the fleet" if subject == FLEET_WIDE else subject
    data = {
        "alert_id": str(alert["id"]),
        "event": event,
        "rule": alert["rule"],
        "subject": subject,
        "reason": alert["reason"],
    }
    body = alert["reason"]
    if event == "acked":
        data["acked_by"] = alert["acked_by"]
        body = f"acknowledged by {alert['acked_by']}: {body}"
    return [
        Message(
            channel=channel,
            recipient=RECIPIENTS[channel],
            subject=f"lifecert alert {alert['id']} {event}: {alert['rule']} on {where}",
            body=body,
            key=delivery_key(alert["id"], event, channel),
            data=data,
        )
        for channel in channels
    ]


def list_alerts(engine: Engine, open_only: bool = False, limit: int = 500) -> list[dict[str, Any]]:
    """Alerts, newest first (``open_only``: not cleared), each with ``delivery``: how far
    its messages got, e.g. ``raised: log sent, webhook pending (HTTP 500)``."""
    query = sa.select(fleet_alerts).order_by(fleet_alerts.c.id.desc()).limit(limit)
    if open_only:
        query = query.where(fleet_alerts.c.cleared_at.is_(None))
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
        keys = [delivery_key(r["id"], e, c) for r in rows for e in EVENTS for c in RECIPIENTS]
        sent: dict[str, Any] = {}
        for first in range(0, len(keys), 1000):
            chunk = keys[first : first + 1000]
            got = sa.select(outbox.outbox.c.key, outbox.outbox.c.status, outbox.outbox.c.last_error)
            sent.update((m.key, m) for m in conn.execute(got.where(outbox.outbox.c.key.in_(chunk))))
    for row in rows:
        parts = []
        for event in EVENTS:
            done = [
                f"{c} {m.status}" + (f" ({m.last_error})" if m.last_error else "")
                for c in RECIPIENTS
                if (m := sent.get(delivery_key(row["id"], event, c))) is not None
            ]
            if done:
                parts.append(f"{event}: {', '.join(done)}")
        row["delivery"] = "; ".join(parts) or row["notify_error"]
    return rows


def acknowledge(
    engine: Engine, alert_id: int, by: str, now: dt.datetime, channels: Sequence[str]
) -> dict[str, Any]:
    """Mark alert ``alert_id`` acknowledged by ``by`` and enqueue its ``acked`` message on
    each of ``channels`` (``[alerts] notify``) in the same transaction; the alert as it is
    now."""
    t = fleet_alerts
    with engine.begin() as conn:
        row = conn.execute(sa.select(t).where(t.c.id == alert_id)).one_or_none()
        if row is None:
            raise AlertError(f"no alert {alert_id}: see `lifecert-central fleet alerts`")
        if row.acked_at is not None:
            when = f"{row.acked_at:%Y-%m-%d %H:%M} UTC"
            raise AlertError(f"alert {alert_id} was acknowledged by {row.acked_by} at {when}")
        conn.execute(t.update().where(t.c.id == alert_id).values(acked_at=now, acked_by=by))
        alert = dict(conn.execute(sa.select(t).where(t.c.id == alert_id)).one()._mapping)
        for message in messages(alert, "acked", channels):
            outbox.enqueue(conn, message, now)
        return alert


class Alerts:
    """Raises and clears alerts from the rules, putting their messages in the outbox."""

    def __init__(
        self,
        engine: Engine,
        settings: AlertSettings,
        timezone: str,
        trust: Callable[[], Trust],
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.zone = zoneinfo.ZoneInfo(timezone)
        self._trust = trust

    def check(self, devices: Sequence[DeviceState], now: dt.datetime) -> tuple[int, int]:
        """Raise what newly fires, clear what stopped, enqueue both; ``(raised, cleared)``."""
        t = fleet_alerts
        with self.engine.connect() as conn:
            open_rows = conn.execute(
                sa.select(t.c.id, t.c.rule, t.c.subject).where(t.c.cleared_at.is_(None))
            ).all()
        open_ids = {(r.rule, r.subject): r.id for r in open_rows}
        lags = desired.lagging(self.engine)
        fire = firing(devices, self._trust(), now, self.settings, self.zone, set(open_ids), lags)
        try:
            raised, cleared = self._store(fire, open_ids, now)
        except sa.exc.IntegrityError:  # another central process raised one a moment ago
            log.info("alerts changed by another process meanwhile: checking again next time")
            return 0, 0
        for alert in raised:
            log.warning("alert %d raised: %s %s: %s",
                        alert["id"], alert["rule"], alert["subject"], alert["reason"])  # fmt: skip
        for alert in cleared:
            log.info("alert %d cleared: %s %s", alert["id"], alert["rule"], alert["subject"])
        return len(raised), len(cleared)

    def _store(
        self, fire: dict[Key, str], open_ids: dict[Key, int], now: dt.datetime
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Insert the new alerts, clear the gone ones and enqueue their messages in one
        transaction (the partial unique index refuses a second open alert for the same rule
        and subject)."""
        t = fleet_alerts
        raised: list[dict[str, Any]] = []
        cleared: list[dict[str, Any]] = []
        with self.engine.begin() as conn:
            for (rule, subject), reason in fire.items():
                if (rule, subject) in open_ids:
                    continue
                values = {"rule": rule, "subject": subject, "reason": reason, "raised_at": now}
                new_id = conn.execute(t.insert().values(**values).returning(t.c.id)).scalar_one()
                raised.append({"id": new_id, **values})
            gone = [i for key, i in open_ids.items() if key not in fire]
            if gone:
                conn.execute(t.update().where(t.c.id.in_(gone)).values(cleared_at=now))
                cleared = [
                    dict(r._mapping) for r in conn.execute(sa.select(t).where(t.c.id.in_(gone)))
                ]
            for alert, event in [
                *((a, "raised") for a in raised),
                *((a, "cleared") for a in cleared),
            ]:
                for message in messages(alert, event, self.settings.notify):
                    outbox.enqueue(conn, message, now)
        return raised, cleared
