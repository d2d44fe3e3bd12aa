"""Central's configuration (``central.toml``), validated at start-up.

Relative paths, including the path of a ``sqlite:///`` database URL, are taken
from the config file's folder. ``LIFECERT_CENTRAL__SECTION__FIELD`` variables
override single fields.
"""

import zoneinfo
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from central.fraud.settings import DuplicateSettings
from central.payments.settings import BankSettings, PaymentSettings
from central.store.settings import DatabaseSettings
from common import config
from common.config import ConfigPath, Section
from common.errors import ConfigError
from protocol import topics
from protocol.settings import MqttSettings, read_password

ENV_PREFIX = "LIFECERT_CENTRAL"
DEFAULT_PATH = Path("/etc/lifecert/central.toml")
_EMPTY: Any = {}  # a missing section is validated from {} so its paths resolve like given ones


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


class KeyFiles(Section):
    """Central's own private keys."""

    sign_key: ConfigPath = Field(
        default=Path("sign.key"),
        title="signing key",
        description="PEM P-256 key acks are signed with",
    )
    seal_key: ConfigPath = Field(
        default=Path("seal.key"),
        title="sealing key",
        description="PEM P-256 key that opens templates sealed by terminals",
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


class CentralConfig(Section):
    """The whole ``central.toml``."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", title="log level", description="DEBUG, INFO, WARNING or ERROR"
    )
    log_json: bool = Field(
        default=True, title="JSON logs", description="JSON lines on stdout (false: plain text)"
    )
    database: DatabaseSettings = Field(
        default=_EMPTY, title="database", description="a [database] table"
    )
    mqtt: CentralMqtt | None = Field(
        default=None, title="broker", description="a [mqtt] table with [mqtt.tls]; needed by run"
    )
    fleet: FleetFiles = Field(default=_EMPTY, title="fleet", description="a [fleet] table")
    keys: KeyFiles = Field(default=_EMPTY, title="keys", description="a [keys] table")
    policy: Policy = Field(default=_EMPTY, title="policy", description="a [policy] table")
    ingest: IngestSettings = Field(default=_EMPTY, title="ingest", description="an [ingest] table")
    payments: PaymentSettings = Field(
        default=_EMPTY, title="payments", description="a [payments] table"
    )
    bank: BankSettings = Field(default=_EMPTY, title="bank", description="a [bank] table")
    duplicates: DuplicateSettings = Field(
        default=_EMPTY, title="duplicates", description="a [duplicates] table"
    )

    def require_mqtt(self) -> CentralMqtt:
        """The [mqtt] section, or a ``ConfigError`` saying to add it."""
        if self.mqtt is None:
            raise ConfigError("the config has no [mqtt] section: add one with [mqtt.tls] files")
        return self.mqtt

    def missing_files(self) -> list[str]:
        """Files the consumer needs that do not exist, as ``field: path`` lines."""
        wanted: dict[str, Path] = {
            "fleet.ca_file": self.fleet.ca_file,
            "fleet.devices_dir": self.fleet.devices_dir,
            "keys.sign_key": self.keys.sign_key,
            "keys.seal_key": self.keys.seal_key,
        }
        if self.mqtt is not None:
            wanted |= {
                "mqtt.tls.ca_file": self.mqtt.tls.ca_file,
                "mqtt.tls.cert_file": self.mqtt.tls.cert_file,
                "mqtt.tls.key_file": self.mqtt.tls.key_file,
            }
            if self.mqtt.password_file is not None:
                wanted["mqtt.password_file"] = self.mqtt.password_file
        return [
            f"{name}: {path} does not exist" for name, path in wanted.items() if not path.exists()
        ]


def load(path: Path | None, environ: dict[str, str] | None = None) -> CentralConfig:
    """Load and validate ``central.toml`` (``ConfigError`` naming each bad field)."""
    return config.load(CentralConfig, path, ENV_PREFIX, environ)
