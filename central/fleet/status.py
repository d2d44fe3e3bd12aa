"""Each terminal's health as one row: what ``fleet status`` prints and the console's fleet
page shows (enrolled terminals, with a certificate in ``[fleet] devices_dir``, and any
terminal ever heard from)."""

import datetime as dt
from typing import Any

from sqlalchemy.engine import Engine

from central.fleet import alerts
from central.fleet.health import load_states

COLUMNS = [
    "device_id", "site", "state", "since", "backlog", "oldest_s", "skew_s", "software",
    "bundle", "disk_free_mb", "temp_c", "sessions_today", "failing", "alerts",
]  # fmt: skip


def rows(
    engine: Engine, trust: alerts.Trust, silent_after_s: float, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """One row per terminal (``COLUMNS``), by device id; ``trust``: the enrolled
    certificates and the CRL (``alerts.read_trust``)."""
    now = now or dt.datetime.now(dt.UTC)
    sites = {c.device_id: c.site for c in trust.certs if c.serial not in trust.revoked}
    known = {s.device_id: s for s in load_states(engine)}
    open_count: dict[str, int] = {}
    for a in alerts.list_alerts(engine, open_only=True, limit=100_000):
        open_count[a["subject"]] = open_count.get(a["subject"], 0) + 1
    found = []
    for device_id in sorted(set(sites) | set(known)):
        s = known.get(device_id)
        t = (s.telemetry if s else None) or {}
        since = s.since() if s else None
        free = t.get("disk_free_bytes")
        found.append(
            {
                "device_id": device_id,
                "site": sites.get(device_id, "(not enrolled)"),
                "state": s.state(now, silent_after_s) if s else "unknown",
                "since": since.strftime("%Y-%m-%d %H:%M:%S") if since else None,
                "backlog": t.get("outbox_pending"),
                "oldest_s": t.get("oldest_pending_s"),
                "skew_s": s.clock_skew_s if s else None,
                "software": t.get("software"),
                "bundle": t.get("model_bundle"),
                "disk_free_mb": None if free is None else free // 1_000_000,
                "temp_c": t.get("temperature_c"),
                "sessions_today": t.get("sessions_today"),
                "failing": ",".join(c["name"] for c in t.get("devices", ()) if not c["ok"]),
                "alerts": open_count.get(device_id, 0),
            }
        )
    return found
