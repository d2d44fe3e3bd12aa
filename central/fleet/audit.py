"""The fleet audit (like AWS IoT Device Defender's): findings, each with its evidence.

Sources: the broker's connection log (:mod:`central.fleet.brokerlog`), the fleet's CRL
and device certificates (which serials are revoked, since when, whose), and central's
``results`` and ``quarantine`` tables. Checks:

- ``revoked_connected`` (high): a revoked terminal logged in after its revocation (the
  broker has not re-read the CRL);
- ``revoked_still_trying`` (medium): certificate refusals from the address a revoked
  terminal last connected from, after its revocation; results it signed still arriving;
- ``certificate_used_twice`` (high): one terminal's login connected from a second host
  while connected from the first (a cloned key and password);
- ``client_id_conflict`` (medium): a client id taken over again and again (two
  connections fighting for it);
- ``refused_logins`` (medium): repeated refused logins (wrong password or client id)
  from one address;
- ``night_passes`` (medium): a site certifying people at night (local ``night`` hours);
- ``unusual_volume`` (low): a site's passes on one day far above its usual day;
- ``clock_drift`` (medium): a terminal's clock ahead (results quarantined as
  ``future_time``) or behind (even its quickest delivery arrives late by more than
  ``max_skew_s``).
"""

import datetime as dt
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from cryptography import x509
from cryptography.x509.oid import NameOID
from sqlalchemy.engine import Engine

from central.fleet.brokerlog import Event, Kind
from central.store import schema
from protocol import topics

Severity = Literal["high", "medium", "low"]
SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}
MAX_EVIDENCE = 8
Rows = Sequence[Any]
"""Rows of a SQLAlchemy select (attribute access by column name)."""


@dataclass(frozen=True)
class Finding:
    """One thing an operator should look at, and why."""

    check: str
    severity: Severity
    subject: str
    summary: str
    evidence: tuple[str, ...]
    count: int = 1


@dataclass(frozen=True)
class Rules:
    """Thresholds of the audit."""

    since: dt.datetime
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    night: tuple[int, int] = (22, 6)
    night_min: int = 5
    night_share: float = 0.2
    volume_factor: float = 3.0
    volume_min: int = 10
    max_skew_s: float = 300.0
    drift_min_results: int = 3
    takeover_min: int = 3
    refused_min: int = 3


@dataclass(frozen=True)
class Fleet:
    """What the fleet's files say: each device's site, and revoked devices since when."""

    sites: Mapping[str, str]
    revoked: Mapping[str, dt.datetime]
    """Device ids whose current certificate is revoked, with the revocation time."""


def read_fleet(crl_file: Path, devices_dir: Path) -> Fleet:
    """Sites from the certificates' OU; revocations from the CRL by serial."""
    crl = x509.load_pem_x509_crl(crl_file.read_bytes())
    revoked_at = {r.serial_number: r.revocation_date_utc for r in crl}
    sites: dict[str, str] = {}
    revoked: dict[str, dt.datetime] = {}
    for path in sorted(devices_dir.glob("*.pem")):
        device_id = path.name.split(".", 1)[0]
        if not topics.DEVICE_ID_RE.match(device_id):
            continue
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except ValueError:
            continue
        if path.name != f"{device_id}.pem":
            continue  # older or pending certificates of a renewal
        units = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
        sites[device_id] = str(units[0].value) if units else topics.DEFAULT_SITE
        if cert.serial_number in revoked_at:
            revoked[device_id] = revoked_at[cert.serial_number]
    return Fleet(sites, revoked)


def _fmt(at: dt.datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S} UTC"


def _cut(lines: list[str], total: int) -> tuple[str, ...]:
    shown = lines[:MAX_EVIDENCE]
    if total > len(shown):
        shown.append(f"... and {total - len(shown)} more")
    return tuple(shown)


# -- the broker's log ----------------------------------------------------------------------------


def broker_findings(log: Iterable[Event], fleet: Fleet, rules: Rules) -> list[Finding]:
    """Findings from the connection log (events before ``rules.since`` are ignored)."""
    found: list[Finding] = []
    last_seen: dict[str, tuple[str, dt.datetime]] = {}  # host -> (device id, when)
    open_on: dict[str, str] = {}
    taken_from: dict[str, str] = {}
    after_revoke: dict[str, list[str]] = defaultdict(list)
    trying: dict[str, list[str]] = defaultdict(list)
    twice: dict[str, list[str]] = defaultdict(list)
    takeovers: dict[str, list[Event]] = defaultdict(list)
    refused: dict[str, list[str]] = defaultdict(list)
    for e in log:
        if e.at < rules.since:
            if e.kind == Kind.CONNECTED:
                last_seen[e.host] = (e.client_id, e.at)
            continue
        if e.kind == Kind.CONNECTED:
            since = fleet.revoked.get(e.client_id)
            if since is not None and e.at > since:
                after_revoke[e.client_id].append(e.line)
            old = taken_from.pop(e.client_id, None) or open_on.get(e.client_id)
            if old and old != e.host:
                twice[e.client_id].append(f"{e.line}  (was connected from {old})")
            open_on[e.client_id] = e.host
            last_seen[e.host] = (e.client_id, e.at)
        elif e.kind == Kind.TAKEOVER:
            takeovers[e.client_id].append(e)
            taken_from[e.client_id] = e.host
        elif e.kind == Kind.DISCONNECTED:
            open_on.pop(e.client_id, None)
        elif e.kind == Kind.TLS_REFUSED:
            device, _ = last_seen.get(e.host, ("", e.at))
            since = fleet.revoked.get(device)
            if since is not None and e.at >= since:  # whole seconds: the same one counts
                trying[device].append(f"{e.line}  (from {e.host}, last seen as {device})")
        elif e.kind == Kind.LOGIN_REFUSED:
            refused[e.host].append(e.line)
    for device, lines in after_revoke.items():
        found.append(
            Finding(
                "revoked_connected",
                "high",
                device,
                f"{device}, revoked {_fmt(fleet.revoked[device])}, logged in {len(lines)} time(s) "
                "after: reload the broker so it re-reads the CRL (lifecert fleet crl)",
                _cut(lines, len(lines)),
                len(lines),
            )
        )
    for device, lines in trying.items():
        found.append(
            Finding(
                "revoked_still_trying",
                "medium",
                device,
                f"{len(lines)} certificate refusal(s) from where revoked {device} last connected, "
                f"after its revocation at {_fmt(fleet.revoked[device])}",
                _cut(lines, len(lines)),
                len(lines),
            )
        )
    for device, lines in twice.items():
        found.append(
            Finding(
                "certificate_used_twice",
                "high",
                device,
                f"{device}'s key and login connected from two hosts at once: a copy exists; "
                "revoke it and enrol the terminal again",
                _cut(lines, len(lines)),
                len(lines),
            )
        )
    for client_id, events in takeovers.items():
        window = _busiest_window(events, dt.timedelta(minutes=10))
        if len(window) >= rules.takeover_min:
            lines = [e.line for e in window]
            found.append(
                Finding(
                    "client_id_conflict",
                    "medium",
                    client_id,
                    f"client id {client_id} taken over {len(window)} times within 10 minutes: "
                    "two connections fight for it (a cloned terminal, or two services)",
                    _cut(lines, len(lines)),
                    len(window),
                )
            )
    for host, lines in refused.items():
        if len(lines) >= rules.refused_min:
            found.append(
                Finding(
                    "refused_logins",
                    "medium",
                    host,
                    f"{len(lines)} refused login(s) from {host}: a wrong password or a client "
                    "id that is not its own",
                    _cut(lines, len(lines)),
                    len(lines),
                )
            )
    return found


def _busiest_window(events: list[Event], width: dt.timedelta) -> list[Event]:
    best: list[Event] = []
    start = 0
    for end, e in enumerate(events):
        while e.at - events[start].at > width:
            start += 1
        if end + 1 - start > len(best):
            best = events[start : end + 1]
    return best


# -- central's tables --------------------------------------------------------------------------


def result_findings(engine: Engine, fleet: Fleet, rules: Rules) -> list[Finding]:
    """Findings from ``results`` and ``quarantine`` received since ``rules.since``."""
    r, q = schema.results, schema.quarantine
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(r.c.result_id, r.c.device_id, r.c.decision, r.c.device_time, r.c.received_at)
            .where(r.c.received_at >= rules.since)
            .order_by(r.c.received_at)
        ).all()
        held = conn.execute(
            sa.select(q.c.device_id, q.c.reason, q.c.detail, q.c.received_at)
            .where(
                q.c.received_at >= rules.since, q.c.reason.in_(["future_time", "revoked_device"])
            )
            .order_by(q.c.received_at)
        ).all()
    return [
        *_night(rows, fleet, rules),
        *_volume(rows, fleet, rules),
        *_drift(rows, held, rules),
        *_revoked_results(held),
    ]


def _local(at: dt.datetime, rules: Rules) -> dt.datetime:
    return at.astimezone(rules.tz)


def _night(rows: Rows, fleet: Fleet, rules: Rules) -> list[Finding]:
    start, end = rules.night
    passes: Counter[str] = Counter()
    at_night: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        if row.decision != "pass":
            continue
        site = fleet.sites.get(row.device_id, topics.DEFAULT_SITE)
        passes[site] += 1
        hour = _local(row.device_time, rules).hour
        if (hour >= start or hour < end) if start > end else start <= hour < end:
            local = _local(row.device_time, rules)
            at_night[site].append(
                f"{row.result_id} by {row.device_id} at {local:%Y-%m-%d %H:%M %Z}"
            )
    out = []
    for site, lines in at_night.items():
        share = len(lines) / passes[site]
        if len(lines) >= rules.night_min and share >= rules.night_share:
            out.append(
                Finding(
                    "night_passes",
                    "medium",
                    site,
                    f"site {site}: {len(lines)} of {passes[site]} passes ({share:.0%}) between "
                    f"{start:02d}:00 and {end:02d}:00 ({rules.tz.key}): check who certified them",
                    _cut(lines, len(lines)),
                    len(lines),
                )
            )
    return out


def _volume(rows: Rows, fleet: Fleet, rules: Rules) -> list[Finding]:
    per_day: dict[str, Counter[dt.date]] = defaultdict(Counter)
    for row in rows:
        if row.decision == "pass":
            site = fleet.sites.get(row.device_id, topics.DEFAULT_SITE)
            per_day[site][_local(row.received_at, rules).date()] += 1
    out = []
    for site, days in per_day.items():
        if len(days) < 2:
            continue
        last = max(days)
        usual = statistics.median(n for d, n in days.items() if d != last)
        if days[last] >= rules.volume_min and days[last] > rules.volume_factor * usual:
            evidence = [f"{d}: {n} passes" for d, n in sorted(days.items())]
            out.append(
                Finding(
                    "unusual_volume",
                    "low",
                    site,
                    f"site {site}: {days[last]} passes on {last}, usually {usual:g} a day",
                    _cut(evidence[-MAX_EVIDENCE:], len(evidence[-MAX_EVIDENCE:])),
                    days[last],
                )
            )
    return out


def _drift(rows: Rows, held: Rows, rules: Rules) -> list[Finding]:
    out = []
    ahead: dict[str, list[str]] = defaultdict(list)
    for row in held:
        if row.reason == "future_time" and row.device_id:
            ahead[row.device_id].append(f"{_fmt(row.received_at)}: {row.detail}")
    for device, lines in ahead.items():
        out.append(
            Finding(
                "clock_drift",
                "medium",
                device,
                f"{device}'s clock runs ahead: {len(lines)} result(s) quarantined (future_time); "
                "check its time sync (NTP)",
                _cut(lines, len(lines)),
                len(lines),
            )
        )
    lags: dict[str, list[tuple[float, Any]]] = defaultdict(list)
    for row in rows:
        lags[row.device_id].append(((row.received_at - row.device_time).total_seconds(), row))
    for device, seen in lags.items():
        if len(seen) < rules.drift_min_results:
            continue
        quickest, row = min(seen, key=lambda pair: float(pair[0]))
        if quickest > rules.max_skew_s:
            out.append(
                Finding(
                    "clock_drift",
                    "medium",
                    device,
                    f"{device}'s clock runs behind by about {quickest:.0f} s: even its quickest "
                    f"of {len(seen)} results arrived that late; check its time sync (NTP)",
                    (
                        f"result {row.result_id}: device time {_fmt(row.device_time)}, "
                        f"received {_fmt(row.received_at)}",
                    ),
                    len(seen),
                )
            )
    return out


def _revoked_results(held: Rows) -> list[Finding]:
    by_device: dict[str, list[str]] = defaultdict(list)
    for row in held:
        if row.reason == "revoked_device" and row.device_id:
            by_device[row.device_id].append(f"{_fmt(row.received_at)}: {row.detail}")
    return [
        Finding(
            "revoked_still_trying",
            "medium",
            device,
            f"{len(lines)} result(s) signed by revoked {device} still arrived (quarantined)",
            _cut(lines, len(lines)),
            len(lines),
        )
        for device, lines in by_device.items()
    ]


def ordered(findings: Iterable[Finding]) -> list[Finding]:
    """Most severe first, then by check and subject."""
    return sorted(findings, key=lambda f: (SEVERITY_ORDER[f.severity], f.check, f.subject))
