"""The ``[alerts]`` and ``[metrics]`` sections of ``central.toml`` (fleet health)."""

import datetime as dt
import re
from typing import Literal

from pydantic import Field, HttpUrl, field_validator, model_validator

from common.config import ConfigPath, Section

_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class AlertSettings(Section):
    """When a terminal's health raises an alert, and where alerts go."""

    interval_s: float = Field(
        default=30.0, gt=0, le=3600, title="check interval", description="seconds between checks"
    )
    silent_after_s: float = Field(
        default=180.0,
        ge=5,
        le=86_400,
        title="silent after",
        description="seconds without telemetry after which an 'online' terminal counts as "
        "silent (offline): three telemetry intervals",
    )
    offline_after_s: float = Field(
        default=300.0,
        ge=0,
        le=7 * 86_400,
        title="offline grace",
        description="seconds a terminal may be offline in opening hours before an alert",
    )
    opening_hours: str = Field(
        default="08:00-18:00",
        title="opening hours",
        description="HH:MM-HH:MM in [policy] timezone; offline alerts only fire inside them",
    )
    opening_days: tuple[int, ...] = Field(
        default=(1, 2, 3, 4, 5),
        min_length=1,
        max_length=7,
        title="opening days",
        description="ISO weekdays the centres open, 1 = Monday ... 7 = Sunday",
    )
    backlog_max: int = Field(
        default=50, ge=1, title="backlog", description="undelivered results before an alert"
    )
    backlog_age_max_s: float = Field(
        default=3600.0,
        gt=0,
        title="backlog age",
        description="seconds the oldest undelivered result may wait before an alert",
    )
    clock_skew_max_s: float = Field(
        default=60.0,
        gt=0,
        le=86_400,
        title="clock skew",
        description="seconds a terminal's clock may differ from central's",
    )
    disk_free_min_mb: int = Field(
        default=500, ge=0, title="disk free", description="MB free under data_dir before an alert"
    )
    cert_expiry_days: int = Field(
        default=30,
        ge=0,
        le=3650,
        title="certificate expiry",
        description="days before a device certificate expires to raise an alert",
    )
    crl_next_update_days: int = Field(
        default=14,
        ge=0,
        le=365,
        title="CRL next update",
        description="days before the CRL's nextUpdate to raise an alert (re-issue it)",
    )
    config_drift_after_s: float = Field(
        default=900.0,
        ge=1,
        le=30 * 86_400,
        title="config drift",
        description="seconds a terminal may run (or refuse) another config than its desired "
        "one before an alert",
    )
    notify: tuple[Literal["log", "webhook"], ...] = Field(
        default=("log",),
        title="notifiers",
        description="where raised, acknowledged and cleared alerts go: log and/or webhook",
    )
    webhook_url: HttpUrl | None = Field(
        default=None,
        title="webhook URL",
        description="http(s) URL alerts are POSTed to as JSON (needed by notify = webhook)",
    )
    webhook_secret_file: ConfigPath | None = Field(
        default=None,
        title="webhook secret file",
        description="file holding the whsec_ secret webhook POSTs are signed with (Standard "
        "Webhooks; make one: lifecert-central notify webhook-secret FILE); none: unsigned",
    )
    webhook_timeout_s: float = Field(
        default=5.0, gt=0, le=60, title="webhook timeout", description="seconds per attempt"
    )
    webhook_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        title="webhook attempts",
        description="HTTP tries each time the notify outbox sends an alert (it tries again "
        "later, [notify] backoff_s)",
    )

    @field_validator("opening_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        match = _HOURS.match(value)
        if not match or value[:5] >= value[6:]:
            raise ValueError(f"{value!r}: use HH:MM-HH:MM with the start first, e.g. 08:00-18:00")
        return value

    @field_validator("opening_days")
    @classmethod
    def _days(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 1 <= d <= 7 for d in value):
            raise ValueError("use ISO weekdays 1 (Monday) to 7 (Sunday)")
        return value

    @model_validator(mode="after")
    def _webhook_has_url(self) -> "AlertSettings":
        if "webhook" in self.notify and self.webhook_url is None:
            raise ValueError("notify includes 'webhook': set webhook_url too")
        return self

    def is_open(self, local: dt.datetime) -> bool:
        """True when ``local`` (a time in the centres' zone) falls in opening hours."""
        hhmm = local.strftime("%H:%M")
        return local.isoweekday() in self.opening_days and (
            self.opening_hours[:5] <= hhmm < self.opening_hours[6:]
        )


class MetricsSettings(Section):
    """Prometheus metrics served by ``lifecert-central run``."""

    port: int = Field(
        default=0,
        ge=0,
        le=65_535,
        title="metrics port",
        description="HTTP port for /metrics; 0 = not served",
    )
    bind: str = Field(
        default="127.0.0.1",
        min_length=1,
        title="metrics address",
        description="address to listen on (keep it on a private network)",
    )
