"""The terminal's configuration (``edge.toml``), validated at start-up.

The keys written by provisioning (``device_id``, ``data_dir``, ``log_level``,
``[mqtt]``, ``[central]``) are required or defaulted exactly as in
docs/design.md; the sections added later (``[outbox]``, ``[link]``, ``[hal.*]``,
``[models]``, ``[session]``, ``[kiosk]``, ``[fleet]``, ``[renewal]``) all have defaults,
so every enrolment bundle stays valid.
"""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from common import config as _config
from common.config import ConfigPath, Section
from edge.fleet.settings import FleetSettings
from edge.kiosk.settings import KioskSettings
from edge.remote.settings import RemoteSettings
from edge.session.settings import SessionSettings
from hal.config import HalSettings
from models.config import ModelsSettings
from protocol import topics
from protocol.settings import CentralKeys, MqttSettings

ENV_PREFIX = "LIFECERT_EDGE"
DEFAULT_PATH = Path("/etc/lifecert/edge.toml")
DB_NAME = "edge.sqlite"

DeviceId = Annotated[str, AfterValidator(topics.check_device_id)]


class OutboxSettings(Section):
    """How long to wait for central's ack and how results are re-sent."""

    ack_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        title="ack timeout",
        description="seconds to wait for central's ack before re-sending a result, e.g. 30",
    )
    backoff_max_s: float = Field(
        default=600.0,
        gt=0,
        le=86400,
        title="maximum back-off",
        description="cap in seconds on the doubling wait between re-sends, e.g. 600",
    )
    max_inflight: int = Field(
        default=200,
        ge=1,
        le=10000,
        title="in-flight window",
        description="results published and not yet acked at most at once, e.g. 200",
    )
    poll_interval_s: float = Field(
        default=0.2,
        gt=0,
        le=60,
        title="poll interval",
        description="seconds between looks for results written by other processes, e.g. 0.2",
    )
    busy_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        title="busy timeout",
        description="seconds to wait for another process's write lock on the outbox, e.g. 10",
    )

    @model_validator(mode="after")
    def _backoff_covers_timeout(self) -> "OutboxSettings":
        if self.backoff_max_s < self.ack_timeout_s:
            raise ValueError("backoff_max_s must be at least ack_timeout_s")
        return self


class LinkSettings(Section):
    """The MQTT session: how long the broker keeps it, how fast to reconnect."""

    session_expiry_s: int = Field(
        default=7 * 86400,
        ge=0,
        le=0xFFFFFFFF,
        title="session expiry",
        description="seconds the broker keeps this terminal's session while it is away",
    )
    reconnect_min_s: int = Field(
        default=1, ge=1, le=600, title="first reconnect delay", description="seconds, e.g. 1"
    )
    reconnect_max_s: int = Field(
        default=60, ge=1, le=3600, title="longest reconnect delay", description="seconds, e.g. 60"
    )
    telemetry_interval_s: float = Field(
        default=60.0,
        ge=0,
        le=86400,
        title="telemetry interval",
        description="seconds between outbox health messages on the telemetry topic; 0 = off",
    )

    @model_validator(mode="after")
    def _ordered(self) -> "LinkSettings":
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        return self


class RenewalSettings(Section):
    """Certificate renewal over MQTT with a key made on the terminal."""

    before_days: float = Field(
        default=30.0,
        ge=0,
        le=3650,
        title="renew before",
        description="renew once the certificate has fewer days than this left; 0 = never",
    )
    retry_s: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        title="renewal retry",
        description="seconds between re-sends of an unanswered request or confirmation",
    )


class EdgeConfig(Section):
    """Everything the terminal service needs (``edge.toml``)."""

    device_id: DeviceId = Field(
        title="device id",
        description="this terminal's id, the CN of its certificate, e.g. term-0001",
    )
    data_dir: ConfigPath = Field(
        default=Path("var"),
        title="data folder",
        description="folder for the outbox database; relative = next to the config file",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", title="log level", description="one of DEBUG, INFO, WARNING, ERROR"
    )
    log_json: bool = Field(
        default=True, title="JSON logs", description="true: one JSON object per log line"
    )
    mqtt: MqttSettings = Field(
        title="broker", description="broker address and mutual TLS files (an [mqtt] table)"
    )
    central: CentralKeys = Field(
        title="central's keys", description="central's public keys (a [central] table)"
    )
    outbox: OutboxSettings = Field(
        default_factory=OutboxSettings, title="outbox", description="an [outbox] table"
    )
    link: LinkSettings = Field(
        default_factory=LinkSettings, title="MQTT session", description="a [link] table"
    )
    hal: HalSettings = Field(
        default=HalSettings.model_validate({}),
        title="hardware",
        description="[hal.*] tables, see docs/hal.md",
    )
    models: ModelsSettings = Field(
        default_factory=ModelsSettings, title="face models", description="a [models] table"
    )
    session: SessionSettings = Field(
        default_factory=SessionSettings, title="session", description="a [session] table"
    )
    kiosk: KioskSettings = Field(
        default_factory=KioskSettings, title="kiosk", description="a [kiosk] table"
    )
    fleet: FleetSettings = Field(
        default_factory=FleetSettings,
        title="fleet",
        description="a [fleet] table: self-test images and update bounds",
    )
    renewal: RenewalSettings = Field(
        default_factory=RenewalSettings,
        title="certificate renewal",
        description="a [renewal] table",
    )
    remote: RemoteSettings = Field(
        default_factory=RemoteSettings,
        title="remote terminal",
        description="a [remote] table: serve phone certifications (docs/phone.md)",
    )

    @model_validator(mode="after")
    def _one_front(self) -> "EdgeConfig":
        if self.kiosk.enabled and self.remote.enabled:
            raise ValueError(
                "kiosk.enabled and remote.enabled: a terminal is a kiosk or a remote terminal; "
                "enrol another device id for the other"
            )
        return self

    @property
    def db_path(self) -> Path:
        """The outbox database file."""
        return self.data_dir / DB_NAME


def load(path: Path | None) -> EdgeConfig:
    """Load and validate ``path`` with ``LIFECERT_EDGE__SECTION__FIELD`` overrides."""
    return _config.load(EdgeConfig, path, env_prefix=ENV_PREFIX)
