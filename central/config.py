"""Central's configuration (``central.toml``), validated at start-up: one section per room,
each defined in the room's ``settings`` module, assembled here with central's own keys.

Relative paths, including the path of a ``sqlite:///`` database URL, are taken
from the config file's folder. ``LIFECERT_CENTRAL__SECTION__FIELD`` variables
override single fields.
"""

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from central.certification.settings import (
    CentralMqtt,
    FleetFiles,
    IngestSettings,
    Policy,
    RequestSettings,
)
from central.channels.settings import PhoneSettings
from central.console.settings import ConsoleSettings
from central.fleet.health_settings import AlertSettings, MetricsSettings
from central.fleet.rollouts_settings import RolloutSettings
from central.fraud.settings import DuplicateSettings
from central.notify.settings import NotifySettings
from central.payments.settings import BankSettings, PaymentSettings
from central.proposals.settings import ProposalSettings
from central.staff.settings import StaffSettings
from central.store.settings import DatabaseSettings
from common import config
from common.config import ConfigPath, Section
from common.errors import ConfigError

ENV_PREFIX = "LIFECERT_CENTRAL"
DEFAULT_PATH = Path("/etc/lifecert/central.toml")
_EMPTY: Any = {}  # a missing section is validated from {} so its paths resolve like given ones


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
    requests: RequestSettings = Field(
        default=_EMPTY,
        title="terminal requests",
        description="a [requests] table (each terminal's request budget)",
    )
    payments: PaymentSettings = Field(
        default=_EMPTY, title="payments", description="a [payments] table"
    )
    bank: BankSettings = Field(default=_EMPTY, title="bank", description="a [bank] table")
    duplicates: DuplicateSettings = Field(
        default=_EMPTY, title="duplicates", description="a [duplicates] table"
    )
    console: ConsoleSettings = Field(
        default=_EMPTY, title="console", description="a [console] table"
    )
    proposals: ProposalSettings = Field(
        default=_EMPTY, title="proposals", description="a [proposals] table"
    )
    staff: StaffSettings = Field(default=_EMPTY, title="staff", description="a [staff] table")
    alerts: AlertSettings = Field(default=_EMPTY, title="alerts", description="an [alerts] table")
    metrics: MetricsSettings = Field(
        default=_EMPTY, title="metrics", description="a [metrics] table"
    )
    rollout: RolloutSettings = Field(
        default=_EMPTY,
        title="fleet config, commands and rollouts",
        description="a [rollout] table",
    )
    notify: NotifySettings = Field(
        default=_EMPTY, title="notify", description="a [notify] table (outbox, adapters)"
    )
    phone: PhoneSettings = Field(
        default=_EMPTY, title="phone channel", description="a [phone] table (docs/phone.md)"
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
