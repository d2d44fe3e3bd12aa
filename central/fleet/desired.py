"""Desired config, like a device shadow: what operators set, what each terminal reports.

Operators set settings (dotted names, scalar values) for a *target*: one device
(``device:<id>``), a site (``site:<site>``, the certificate's OU) or a named group
(``group:<name>``, see :func:`add_to_group`). A device's effective config is the merge of
its site's, its groups' (by name) and its own, later ones winning. Whenever that changes,
the device gets a new :class:`protocol.fleet.DesiredConfig` with the next ``version``,
signed by central and published retained on its ``config`` topic by the running service.

Terminals report what they run on ``reported`` (retained, signed by the device): the
config version and SHA-256 of its settings, or why they refused it. A device whose
reported version lags its desired one for longer than ``drift_after_s`` is *drifting*
(:func:`lagging` lists them for the ``config_drift`` alert rule).
"""

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from central.store.schema import UtcDateTime, metadata
from common.errors import LifecertError
from protocol import fleet, messages, signing, topics
from protocol.errors import MessageError

MAX_TARGET_SETTINGS: Final = 32
_GROUP = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")

groups = sa.Table(
    "fleet_groups",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("device_id", sa.String(63), primary_key=True),
)

config_sets = sa.Table(
    "fleet_config_sets",
    metadata,
    sa.Column("target", sa.String(80), primary_key=True),  # device:<id> / site:<s> / group:<g>
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

desired = sa.Table(
    "fleet_desired",
    metadata,
    sa.Column("device_id", sa.String(63), primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("token", sa.Text, nullable=False),  # the signed DesiredConfig (JWS compact)
    sa.Column("issued_at", UtcDateTime, nullable=False),
    sa.Column("published_at", UtcDateTime),
)

reported = sa.Table(
    "fleet_reported",
    metadata,
    sa.Column("device_id", sa.String(63), primary_key=True),
    sa.Column("config_version", sa.BigInteger, nullable=False),
    sa.Column("config_sha256", sa.String(64)),
    sa.Column("config_error", sa.String(500)),
    sa.Column("model_version", sa.String(40)),
    sa.Column("software_version", sa.String(40), nullable=False),
    sa.Column("device_time", UtcDateTime, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
)


class TargetError(LifecertError, ValueError):
    """A target or setting an operator gave is not valid."""


@dataclass(frozen=True)
class Member:
    """An enrolled device as the fleet sees it: its id and site."""

    device_id: str
    site: str


def check_target(target: str) -> str:
    """``device:<id>``, ``site:<site>`` or ``group:<name>``; ``TargetError`` otherwise."""
    kind, _, name = target.partition(":")
    try:
        if kind == "device":
            topics.check_device_id(name)
        elif kind == "site":
            topics.check_site(name)
        elif kind == "group":
            check_group(name)
        else:
            raise ValueError(f"unknown target kind {kind!r}")
    except ValueError as exc:
        raise TargetError(
            f"target {target!r}: {exc}; use device:<id>, site:<site> or group:<name>"
        ) from None
    return target


def check_group(name: str) -> str:
    """A group name: 1-40 lower-case letters, digits or '-'."""
    if not _GROUP.match(name):
        raise TargetError(f"group {name!r}: use 1-40 lower-case letters, digits or '-'")
    return name


def parse_setting(text: str) -> tuple[str, Any]:
    """``name=value`` (value as JSON when it parses: numbers, true/false; else text)."""
    name, sep, raw = text.partition("=")
    if not sep:
        raise TargetError(f"{text!r}: write settings as name=value, e.g. log_level=DEBUG")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    if not isinstance(value, bool | int | float | str):
        value = raw
    try:
        messages.validate(fleet.DesiredConfig, _probe({name: value}))
    except MessageError as exc:
        raise TargetError(f"{text!r}: {exc}") from None
    return name, value


def _probe(settings: dict[str, Any]) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {"device_id": "probe-device", "version": 1, "issued_at": now, "settings": settings}


def set_config(
    engine: Engine, target: str, values: dict[str, Any], unset: list[str], now: dt.datetime
) -> dict[str, Any]:
    """Merge ``values`` into ``target``'s settings and drop ``unset``; the new settings."""
    check_target(target)
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(config_sets.c.settings).where(config_sets.c.target == target)
        ).first()
        current: dict[str, Any] = dict(row.settings) if row else {}
        current.update(values)
        for name in unset:
            current.pop(name, None)
        if len(current) > MAX_TARGET_SETTINGS:
            raise TargetError(f"{target}: at most {MAX_TARGET_SETTINGS} settings per target")
        conn.execute(sa.delete(config_sets).where(config_sets.c.target == target))
        if current:
            conn.execute(
                sa.insert(config_sets).values(target=target, settings=current, updated_at=now)
            )
    return current


def add_to_group(engine: Engine, name: str, device_ids: list[str]) -> None:
    """Put devices into group ``name`` (made on first use)."""
    check_group(name)
    with engine.begin() as conn:
        for device_id in device_ids:
            topics.check_device_id(device_id)
            conn.execute(sa.delete(groups).where(_member(name, device_id)))
            conn.execute(sa.insert(groups).values(name=name, device_id=device_id))


def remove_from_group(engine: Engine, name: str, device_ids: list[str]) -> None:
    """Take devices out of group ``name``."""
    with engine.begin() as conn:
        for device_id in device_ids:
            conn.execute(sa.delete(groups).where(_member(name, device_id)))


def _member(name: str, device_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(groups.c.name == name, groups.c.device_id == device_id)


def group_members(conn: Connection, name: str) -> list[str]:
    """The device ids in group ``name``."""
    rows = conn.execute(sa.select(groups.c.device_id).where(groups.c.name == name))
    return sorted(r.device_id for r in rows)


def effective(conn: Connection, member: Member) -> dict[str, Any]:
    """The merged settings of one device: site, then its groups by name, then its own."""
    sets = {r.target: r.settings for r in conn.execute(sa.select(config_sets))}
    names = conn.execute(
        sa.select(groups.c.name).where(groups.c.device_id == member.device_id)
    ).scalars()
    merged: dict[str, Any] = {}
    for target in (
        f"site:{member.site}",
        *(f"group:{g}" for g in sorted(names)),
        f"device:{member.device_id}",
    ):
        merged.update(sets.get(target, {}))
    return merged


def refresh(
    engine: Engine, members: list[Member], signer: signing.Signer, now: dt.datetime
) -> list[str]:
    """Give every device whose effective settings changed a new signed desired config.

    Returns the ids of the devices that got one (the service publishes them).
    """
    changed = []
    with engine.begin() as conn:
        old = {r.device_id: r for r in conn.execute(sa.select(desired))}
        for member in members:
            settings = effective(conn, member)
            digest = fleet.settings_sha256(settings)
            before = old.get(member.device_id)
            if before is not None and before.sha256 == digest:
                continue
            if before is None and not settings:
                continue
            version = 1 if before is None else before.version + 1
            doc = fleet.DesiredConfig(
                device_id=member.device_id, version=version, issued_at=now, settings=settings
            )
            values = {
                "version": version,
                "settings": settings,
                "sha256": digest,
                "token": signer.sign(messages.encode(doc)),
                "issued_at": now,
                "published_at": None,
            }
            if before is None:
                conn.execute(sa.insert(desired).values(device_id=member.device_id, **values))
            else:
                conn.execute(
                    sa.update(desired).where(desired.c.device_id == member.device_id).values(values)
                )
            changed.append(member.device_id)
    return changed


def unpublished(engine: Engine, everything: bool = False) -> list[tuple[str, str]]:
    """``(device_id, token)`` of the desired configs not published yet (or of all)."""
    query = sa.select(desired.c.device_id, desired.c.token)
    if not everything:
        query = query.where(desired.c.published_at.is_(None))
    with engine.connect() as conn:
        return [(r.device_id, r.token) for r in conn.execute(query)]


def mark_published(engine: Engine, sent: list[tuple[str, str]], now: dt.datetime) -> None:
    """Record that these ``(device_id, token)`` (if still the desired ones) went out."""
    with engine.begin() as conn:
        for device_id, token in sent:
            conn.execute(
                sa.update(desired)
                .where(desired.c.device_id == device_id, desired.c.token == token)
                .values(published_at=now)
            )


def record_reported(engine: Engine, report: fleet.Reported, now: dt.datetime) -> None:
    """Keep a device's latest report (MQTT keeps one topic's messages in order)."""
    values = {
        "config_version": report.config_version,
        "config_sha256": report.config_sha256,
        "config_error": report.config_error,
        "model_version": report.model_version,
        "software_version": report.software_version,
        "device_time": report.at,
        "received_at": now,
    }
    with engine.begin() as conn:
        conn.execute(sa.delete(reported).where(reported.c.device_id == report.device_id))
        conn.execute(sa.insert(reported).values(device_id=report.device_id, **values))


@dataclass(frozen=True)
class Lag:
    """A device whose reported config is not its desired one, since ``since`` (when the
    desired config was issued); ``refused``: the terminal's last refusal, if any."""

    device_id: str
    desired_version: int
    since: dt.datetime
    reported_version: int | None
    refused: str | None


def lagging(engine: Engine) -> list[Lag]:
    """Every device whose reported config differs from its desired one."""
    query = sa.select(
        desired.c.device_id,
        desired.c.version,
        desired.c.sha256,
        desired.c.issued_at,
        reported.c.config_version,
        reported.c.config_sha256,
        reported.c.config_error,
    ).select_from(desired.outerjoin(reported, reported.c.device_id == desired.c.device_id))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        Lag(r.device_id, r.version, r.issued_at, r.config_version, r.config_error)
        for r in rows
        if r.config_version != r.version or r.config_sha256 != r.sha256
    ]


def state(
    engine: Engine, members: list[Member], now: dt.datetime, drift_after: dt.timedelta
) -> list[dict[str, Any]]:
    """Desired against reported per device, with ``drift`` when they differ too long."""
    with engine.connect() as conn:
        want = {r.device_id: r for r in conn.execute(sa.select(desired))}
        have = {r.device_id: r for r in conn.execute(sa.select(reported))}
    rows = []
    for member in sorted(members, key=lambda m: m.device_id):
        d, r = want.get(member.device_id), have.get(member.device_id)
        in_sync = d is None or (
            r is not None and r.config_version == d.version and r.config_sha256 == d.sha256
        )
        drift = not in_sync and d is not None and now - d.issued_at >= drift_after
        rows.append(
            {
                "device_id": member.device_id,
                "site": member.site,
                "desired_version": d.version if d else None,
                "desired": dict(d.settings) if d else {},
                "reported_version": r.config_version if r else None,
                "refused": r.config_error if r else None,
                "model_version": r.model_version if r else None,
                "software_version": r.software_version if r else None,
                "reported_at": r.received_at if r else None,
                "state": "in sync" if in_sync else ("drift" if drift else "pending"),
            }
        )
    return rows


def group_listing(engine: Engine) -> list[dict[str, Any]]:
    """Every group with its members."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(groups).order_by(groups.c.name, groups.c.device_id)).all()
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r.name, []).append(r.device_id)
    return [
        {"group": name, "devices": " ".join(ids), "count": len(ids)} for name, ids in out.items()
    ]


def target_settings(engine: Engine) -> list[dict[str, Any]]:
    """Every target with its own settings (before merging)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(config_sets).order_by(config_sets.c.target))
        return [{"target": r.target, "settings": dict(r.settings)} for r in rows]
