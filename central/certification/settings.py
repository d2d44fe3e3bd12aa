"""The ``[mqtt]``, ``[fleet]``, ``[policy]``, ``[ingest]`` and ``[requests]`` sections of
``central.toml``."""

import zoneinfo
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from common.config import ConfigPath, Section
from protocol import topics
from protocol.settings import MqttSettings, read_password


class CentralMqtt(MqttSettings):
    """The broker connection, with central's client certificate, login and session settings."""

    username: str = Field(
        default="lifecert-central",
        min_length=1,
        title="broker username",
        description="central's broker login (its password is in password_file)",
    )
    client_id: str = Field(
        default="lifecert-central",
        min_length=1,
        max_length=64,
        title="client id",
        description="MQTT client id; give each consumer process its own (persistent session)",
    )
    share_group: str = Field(
        default=topics.SHARE_GROUP,
        pattern=r"^[A-Za-z0-9_-]+$",
        title="share group",
        description="shared-subscription group that consumer processes split results in",
    )
    session_expiry_s: int = Field(
        default=86_400,
        ge=0,
        title="session expiry",
        description="seconds the broker keeps central's session (and queued results) offline",
    )

    def login(self) -> tuple[str, str] | None:
        """``(username, password)`` for the broker, or None without a password file."""
        password = read_password(self)
        return None if password is None else (self.username, password)


class FleetFiles(Section):
    """The fleet's trust anchors as provisioning writes them."""

    ca_file: ConfigPath = Field(
        default=Path("../ca/ca.pem"),
        title="fleet CA",
        description="PEM certificate of the fleet CA",
    )
    crl_file: ConfigPath = Field(
        default=Path("../ca/crl.pem"),
        title="fleet CRL",
        description="PEM CRL signed by the fleet CA; re-read when it changes",
    )
    devices_dir: ConfigPath = Field(
        default=Path("../devices"),
        title="device certificates",
        description="folder of <device_id>.pem certificates of enrolled devices",
    )


class Policy(Section):
    """Rules a result must meet to count."""

    validity_months: int = Field(
        default=12,
        ge=1,
        le=60,
        title="validity",
        description="months a passed certification is valid, counted from the device's date",
    )
    max_future_skew_s: int = Field(
        default=300,
        ge=0,
        le=86_400,
        title="future skew",
        description="seconds a device clock may run ahead of central's",
    )
    max_result_age_days: int = Field(
        default=60,
        ge=1,
        le=3650,
        title="maximum age",
        description="days after which a result is too old to apply",
    )
    timezone: str = Field(
        default="UTC",
        title="time zone",
        description="IANA zone whose calendar date certifies, e.g. Asia/Shanghai",
    )
    birthday_anchored: bool = Field(
        default=False,
        title="birthday-anchored",
        description="a pass certifies until a birthday (the first one after the reminder "
        "window, plus validity_months - 12) instead of device date + validity_months",
    )
    reminder_days: int = Field(
        default=30,
        ge=0,
        le=366,
        title="reminder window",
        description="days before certified_until in which a retiree is 'due' (reminders, "
        "coverage report)",
    )
    grace_days: int = Field(
        default=0,
        ge=0,
        le=366,
        title="grace",
        description="days after certified_until before a payment run holds payment",
    )
    assisted_review_age: int | None = Field(
        default=90,
        ge=0,
        le=150,
        title="assisted review age",
        description="an assisted pass for a retiree this old (years, at the device's date) "
        "goes to review instead of certifying at once; none: never by age",
    )
    assisted_review_repeat: bool = Field(
        default=True,
        title="assisted review of a repeat",
        description="an assisted pass right after another assisted pass of the same retiree "
        "goes to review instead of certifying at once",
    )

    @model_validator(mode="after")
    def _anchor_needs_whole_years(self) -> "Policy":
        if self.birthday_anchored and self.validity_months % 12:
            raise ValueError("birthday_anchored needs validity_months in whole years (12, 24, ...)")
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: use an IANA name like UTC") from None
        return value


class IngestSettings(Section):
    """How the consumer batches results into transactions."""

    batch_size: int = Field(
        default=200, ge=1, le=5000, title="batch size", description="results per DB transaction"
    )
    max_wait_ms: int = Field(
        default=50,
        ge=0,
        le=10_000,
        title="batch wait",
        description="milliseconds to wait for a batch to fill before applying it",
    )


class RequestSettings(Section):
    """Each terminal's budget of requests on its ``req`` topic (templates, status, receipts,
    one-time codes): a token bucket per device."""

    burst: int = Field(
        default=20, ge=1, le=10_000, title="burst", description="requests a device may make at once"
    )
    per_minute: float = Field(
        default=30.0,
        gt=0,
        le=100_000,
        title="refill",
        description="requests a minute a device may keep up, e.g. 30",
    )
