"""The ``[notify]`` section of ``central.toml``: the outbox's retries, the adapters, reminders.

``channels`` says which adapter delivers each channel: ``email`` and ``sms`` take their
settings from ``[notify.smtp]`` and ``[notify.sms]``; ``log`` (the default for every
channel) writes the message to the log, recipient masked.
"""

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, HttpUrl, model_validator

from common.config import ConfigPath, Section
from common.errors import ConfigError

_EMPTY: Any = {}  # a missing section is validated from {} so its paths resolve like given ones
Adapter = Literal["log", "smtp", "sms_http"]


class SmtpSettings(Section):
    """An SMTP relay for e-mail (``smtplib``; STARTTLS when ``starttls``)."""

    host: str = Field(default="127.0.0.1", title="SMTP host", description="the relay's host name")
    port: int = Field(default=587, ge=1, le=65535, title="SMTP port", description="1-65535")
    starttls: bool = Field(
        default=True, title="STARTTLS", description="upgrade the connection with STARTTLS first"
    )
    ca_file: ConfigPath | None = Field(
        default=None,
        title="CA file",
        description="PEM CA the relay's certificate is checked against (default: the system's)",
    )
    username: str | None = Field(
        default=None, title="SMTP user", description="login name (none: no login)"
    )
    password_file: ConfigPath | None = Field(
        default=None, title="SMTP password file", description="file holding the login password"
    )
    sender: str = Field(
        default="lifecert@localhost",
        pattern=r"^[^\s<>,;]{1,200}@[^\s<>,;]{1,200}$",
        title="From address",
        description="the address reminders are sent from",
    )
    timeout_s: float = Field(default=20.0, gt=0, le=300, title="timeout", description="seconds")


class SmsSettings(Section):
    """An HTTP SMS gateway: one JSON POST per message, with an ``Idempotency-Key`` header."""

    url: HttpUrl = Field(
        default=HttpUrl("http://127.0.0.1:8025/sms"),
        title="gateway URL",
        description="where messages are POSTed (https in production)",
    )
    token_file: ConfigPath | None = Field(
        default=None,
        title="gateway token file",
        description="file holding the bearer token sent as 'Authorization: Bearer ...'",
    )
    sender_id: str = Field(
        default="LIFECERT",
        pattern=r"^[A-Za-z0-9]{1,11}$",
        title="sender id",
        description="the name the gateway shows as sender (1-11 letters or digits)",
    )
    timeout_s: float = Field(default=10.0, gt=0, le=120, title="timeout", description="seconds")


class ReminderSettings(Section):
    """When reminders go out (see ``central.notify.reminders``)."""

    days_before: list[int] = Field(
        default=[30],
        title="days before",
        description="days before the due date a reminder goes out, e.g. [30, 7]",
    )
    templates_dir: ConfigPath | None = Field(
        default=None,
        title="templates folder",
        description="folder of <stage>.<language>.txt templates overriding the shipped ones",
    )

    @model_validator(mode="after")
    def _days(self) -> "ReminderSettings":
        if any(not 1 <= d <= 365 for d in self.days_before) or len(self.days_before) > 5:
            raise ValueError("days_before: at most 5 numbers, each 1-365")
        return self


class NotifySettings(Section):
    """The outbox, its adapters, and reminders."""

    channels: dict[Literal["email", "sms", "webhook"], Adapter] = Field(
        default={"email": "log", "sms": "log"},
        title="adapters",
        description="adapter per channel: log, smtp (email) or sms_http (sms)",
    )
    max_attempts: int = Field(
        default=8, ge=1, le=100, title="attempts", description="tries before a dead letter"
    )
    backoff_s: float = Field(
        default=30.0, gt=0, le=3600, title="first backoff", description="seconds; doubles per try"
    )
    backoff_max_s: float = Field(
        default=3600.0, gt=0, le=86400, title="longest backoff", description="seconds"
    )
    lease_s: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        title="lease",
        description="seconds a sender holds a message it is delivering before another may",
    )
    batch: int = Field(default=100, ge=1, le=10_000, title="batch", description="messages a pass")
    interval_s: float = Field(
        default=5.0, gt=0, le=3600, title="poll interval", description="seconds between passes"
    )
    smtp: SmtpSettings = Field(default=_EMPTY, title="SMTP", description="[notify.smtp]")
    sms: SmsSettings = Field(default=_EMPTY, title="SMS", description="[notify.sms]")
    reminders: ReminderSettings = Field(
        default=_EMPTY, title="reminders", description="[notify.reminders]"
    )

    @model_validator(mode="after")
    def _adapters_fit(self) -> "NotifySettings":
        for channel, adapter in self.channels.items():
            fits = {"smtp": "email", "sms_http": "sms"}.get(adapter, channel)
            if fits != channel:
                raise ValueError(f"channels.{channel}: {adapter} cannot deliver {channel}")
        return self


def read_secret(path: Path | None, field: str) -> str | None:
    """The first line of a secret file (None: no file configured); ``ConfigError`` naming
    ``field`` when it cannot be read."""
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{field}: cannot read {path}: {exc}") from None
