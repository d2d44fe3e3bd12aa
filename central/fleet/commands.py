"""Signed remote commands: restart, self-test, resync templates, renew certificate, update.

``send`` stores a :class:`protocol.fleet.Command` signed by central (a fresh id, the device
it is for, an expiry) with status ``queued``; the running service publishes it on the
device's ``cmd`` topic (QoS 1) and marks it ``sent``. The terminal verifies it (signature,
its own device id, expiry, an id it has not seen) and answers with a
:class:`protocol.fleet.CommandAck` signed by its device key on ``cmdack``, which
:func:`record_ack` checks against the device's certificate and stores: ``done``,
``failed`` or ``refused`` with the terminal's reason. What a command does on the terminal
is the terminal's: ``renew_certificate`` runs the enrolment room's renewal.
"""

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from central.certification.devices import DeviceTrust, Standing
from central.store.schema import UtcDateTime, metadata
from common.errors import LifecertError
from protocol import fleet, messages, signing, topics
from protocol.errors import MessageError, SignatureError

commands = sa.Table(
    "fleet_commands",
    metadata,
    sa.Column("command_id", sa.Uuid, primary_key=True),
    sa.Column("device_id", sa.String(63), nullable=False, index=True),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("args", sa.JSON, nullable=False),
    sa.Column("issued_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("token", sa.Text, nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("detail", sa.String(500), nullable=False, default=""),
    sa.Column("ack_data", sa.JSON),
    sa.Column("acked_at", UtcDateTime),
    sa.Column("rollout_id", sa.String(40), index=True),
)

QUEUED, SENT = "queued", "sent"
OPERATOR_ACTIONS = (
    fleet.Action.RESTART,
    fleet.Action.SELF_TEST,
    fleet.Action.RESYNC_TEMPLATES,
    fleet.Action.RENEW_CERTIFICATE,
)


class CommandError(LifecertError, ValueError):
    """A command cannot be sent as asked."""


def send(
    engine: Engine,
    signer: signing.Signer,
    device_id: str,
    action: fleet.Action,
    now: dt.datetime,
    ttl: dt.timedelta,
    args: dict[str, Any] | None = None,
    rollout_id: str | None = None,
) -> uuid.UUID:
    """Queue a signed command for ``device_id``; its id."""
    with engine.begin() as conn:
        return queue_command(conn, signer, device_id, action, now, ttl, args, rollout_id)


def queue_command(
    conn: Connection,
    signer: signing.Signer,
    device_id: str,
    action: fleet.Action,
    now: dt.datetime,
    ttl: dt.timedelta,
    args: dict[str, Any] | None = None,
    rollout_id: str | None = None,
) -> uuid.UUID:
    """``send`` inside the caller's transaction."""
    if not dt.timedelta(seconds=1) <= ttl <= fleet.MAX_COMMAND_LIFETIME:
        raise CommandError(f"ttl: between 1 s and {fleet.MAX_COMMAND_LIFETIME}")
    command = fleet.Command(
        command_id=uuid.uuid4(),
        device_id=device_id,
        action=action,
        args=args or {},
        issued_at=now,
        expires_at=now + ttl,
    )
    conn.execute(
        sa.insert(commands).values(
            command_id=command.command_id,
            device_id=device_id,
            action=action.value,
            args=command.args,
            issued_at=now,
            expires_at=command.expires_at,
            token=signer.sign(messages.encode(command)),
            status=QUEUED,
            detail="",
            rollout_id=rollout_id,
        )
    )
    return command.command_id


def queued(engine: Engine, now: dt.datetime) -> list[tuple[uuid.UUID, str, str]]:
    """``(command_id, device_id, token)`` of the queued, unexpired commands, oldest first;
    queued ones that expired are marked ``expired``."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(commands)
            .where(commands.c.status.in_((QUEUED, SENT)), commands.c.expires_at < now)
            .values(status="expired", detail="no answer before it expired")
        )
        rows = conn.execute(
            sa.select(commands.c.command_id, commands.c.device_id, commands.c.token)
            .where(commands.c.status == QUEUED)
            .order_by(commands.c.issued_at)
        )
        return [(r.command_id, r.device_id, r.token) for r in rows]


def mark_sent(engine: Engine, command_ids: list[uuid.UUID]) -> None:
    """The commands went to the broker."""
    with engine.begin() as conn:
        for command_id in command_ids:
            conn.execute(
                sa.update(commands)
                .where(commands.c.command_id == command_id, commands.c.status == QUEUED)
                .values(status=SENT)
            )


def verify_device_message(trust: DeviceTrust, token: bytes, topic_device: str) -> bytes:
    """The payload of a JWS signed by a trusted device, the one whose topic it came on.

    ``SignatureError`` for an unknown, revoked or expired signer, or another device's.
    """
    kid = signing.unverified_header(token)["kid"]
    device = trust.by_kid(kid)
    if device is None:
        raise SignatureError(f"signed by an unknown key {kid[:12]}")
    if device.device_id != topic_device:
        raise SignatureError(f"signed by {device.device_id}, sent on {topic_device}'s topic")
    standing = device.standing(trust.revoked, dt.datetime.now(dt.UTC))
    if standing is not Standing.TRUSTED:
        raise SignatureError(f"{device.device_id}'s certificate is {standing.value}")
    return device.verifier.verify(token)


def record_ack(engine: Engine, ack: fleet.CommandAck, now: dt.datetime) -> dict[str, Any] | None:
    """Store a verified ack; the command's row (with ``rollout_id``) if it was this
    device's and still open, else None (a duplicate or a stray ack changes nothing).

    An update already ``done`` may still turn ``failed``: a release rolled back in its
    probation."""
    late_rollback = sa.and_(
        commands.c.status == fleet.AckStatus.DONE.value,
        commands.c.action == fleet.Action.UPDATE.value,
        sa.literal(ack.status is fleet.AckStatus.FAILED and bool(ack.data.get("rolled_back"))),
    )
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(commands).where(
                commands.c.command_id == ack.command_id,
                commands.c.device_id == ack.device_id,
                sa.or_(commands.c.status.in_((QUEUED, SENT)), late_rollback),
            )
        ).first()
        if row is None:
            return None
        conn.execute(
            sa.update(commands)
            .where(commands.c.command_id == ack.command_id)
            .values(status=ack.status.value, detail=ack.detail, ack_data=ack.data, acked_at=now)
        )
        return dict(row._mapping) | {"status": ack.status.value, "detail": ack.detail}


def decode_ack(payload: bytes, topic_device: str) -> fleet.CommandAck:
    """A verified payload as an ack about ``topic_device``; ``MessageError`` otherwise."""
    ack = messages.decode(fleet.CommandAck, payload)
    if ack.device_id != topic_device:
        raise MessageError(f"ack names {ack.device_id}, sent on {topic_device}'s topic")
    return ack


def listing(engine: Engine, device_id: str | None, limit: int) -> list[dict[str, Any]]:
    """The newest commands (of one device), newest first."""
    query = sa.select(commands).order_by(commands.c.issued_at.desc()).limit(limit)
    if device_id is not None:
        query = query.where(commands.c.device_id == topics.check_device_id(device_id))
    with engine.connect() as conn:
        return [
            {
                "command_id": str(r.command_id),
                "device_id": r.device_id,
                "action": r.action,
                "status": r.status,
                "detail": r.detail,
                "issued_at": r.issued_at,
                "acked_at": r.acked_at,
                "rollout_id": r.rollout_id,
            }
            for r in conn.execute(query)
        ]
