"""Fleet messages: desired config and commands (central signs), reports and acks (devices sign).

Each is the JSON payload of a JWS compact ES256 (``protocol.signing``):

- :class:`DesiredConfig` on ``<root>/dev/<id>/config`` (retained), signed by central;
- :class:`Command` on ``<root>/dev/<id>/cmd`` (QoS 1), signed by central;
- :class:`CommandAck` on ``<root>/dev/<id>/cmdack`` (QoS 1), signed by the device;
- :class:`Reported` on ``<root>/dev/<id>/reported`` (retained), signed by the device.

A receiver checks, besides the signature, that the message names *its* device (a config
or command signed for another terminal is refused), that a config's ``version`` is newer
than the one it runs, and that a command is unexpired and not seen before (replay).
"""

import datetime as dt
import hashlib
import json
import re
import uuid
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, Field

from protocol.messages import DeviceId, Text, UtcDateTime, _Strict

MAX_CONFIG_BYTES: Final = 16 * 1024
MAX_COMMAND_BYTES: Final = 8 * 1024
MAX_ACK_BYTES: Final = 8 * 1024
MAX_REPORTED_BYTES: Final = 8 * 1024
MAX_SETTINGS: Final = 64
MAX_COMMAND_LIFETIME: Final = dt.timedelta(days=7)

_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}(\.[a-z][a-z0-9_]{0,39}){0,3}$")
Scalar = bool | int | float | Annotated[str, Field(max_length=200)]
_SHA256 = r"^[0-9a-f]{64}$"
Name = Annotated[str, Field(pattern=r"^[0-9a-z][0-9a-z._-]{0,39}$")]
"""A version or rollout id: 1-40 lower-case letters, digits, '.', '_' or '-'."""


def _settings(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > MAX_SETTINGS:
        raise ValueError(f"at most {MAX_SETTINGS} settings")
    for key in value:
        if not _KEY.match(key):
            raise ValueError(f"setting {key!r} is not a dotted name like link.telemetry_interval_s")
    return value


Settings = Annotated[dict[str, Scalar], AfterValidator(_settings)]
"""Dotted setting names (``section.field``) to scalar values."""


def settings_sha256(settings: dict[str, Any]) -> str:
    """SHA-256 of the settings' canonical JSON: how desired and reported are compared."""
    doc = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()


class DesiredConfig(_Strict):
    """What an operator wants one terminal to run (published retained, signed by central)."""

    format: Literal["lifecert-config/1"] = "lifecert-config/1"
    device_id: DeviceId
    version: int = Field(ge=1, le=2**62)
    issued_at: UtcDateTime
    settings: Settings


class Action(StrEnum):
    """What a command asks a terminal to do."""

    RESTART = "restart"
    SELF_TEST = "self_test"
    RESYNC_TEMPLATES = "resync_templates"
    RENEW_CERTIFICATE = "renew_certificate"
    UPDATE = "update"
    REVERT = "revert"


class UpdateArgs(_Strict):
    """An ``update`` command's arguments: where the signed bundle is, what it must be, and
    whether it is a model bundle or the terminal's software."""

    rollout_id: Name
    kind: Literal["model", "software"] = "model"
    url: str = Field(max_length=500, pattern=r"^https://[^\s]+$")
    sha256: str = Field(pattern=_SHA256)
    size: int = Field(ge=1, le=512 * 1024 * 1024)
    version: Name


class RevertArgs(_Strict):
    """A ``revert`` command's arguments: switch from the release a rollout installed back
    to the one the terminal ran before it (which the terminal kept and named in its
    ``done`` answer to the update)."""

    rollout_id: Name
    kind: Literal["model", "software"] = "model"
    release: Name
    """The release the rollout installed: the terminal must still run it."""
    previous: Name
    """The release to switch back to: still on the terminal, verifying."""


class Command(_Strict):
    """One command to one terminal (signed by central; valid until ``expires_at``)."""

    format: Literal["lifecert-cmd/1"] = "lifecert-cmd/1"
    command_id: uuid.UUID
    device_id: DeviceId
    action: Action
    args: Settings = Field(default_factory=dict)
    issued_at: UtcDateTime
    expires_at: UtcDateTime


class AckStatus(StrEnum):
    """How a terminal answered a command."""

    DONE = "done"
    FAILED = "failed"
    REFUSED = "refused"


class CommandAck(_Strict):
    """A terminal's answer to a command (signed by the device)."""

    format: Literal["lifecert-cmd-ack/1"] = "lifecert-cmd-ack/1"
    command_id: uuid.UUID
    device_id: DeviceId
    status: AckStatus
    detail: Text = Field(default="", max_length=500)
    data: Settings = Field(default_factory=dict)
    at: UtcDateTime


class Reported(_Strict):
    """What a terminal runs (published retained, signed by the device)."""

    format: Literal["lifecert-reported/1"] = "lifecert-reported/1"
    device_id: DeviceId
    config_version: int = Field(ge=0, le=2**62)
    config_sha256: str | None = Field(default=None, pattern=_SHA256)
    config_error: Text | None = Field(default=None, max_length=500)
    model_version: Name | None = None
    software_version: str = Field(max_length=40, pattern=r"^[0-9A-Za-z.+_-]+$")
    at: UtcDateTime
