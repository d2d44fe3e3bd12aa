"""``fleet.toml``: the fleet's name, where its broker is, how long certificates live.

Loaded with :func:`common.config.load` (env prefix ``LIFECERT_FLEET``), so
``LIFECERT_FLEET__BROKER__RELOAD_COMMAND=...`` overrides one field.
"""

import datetime as dt
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from common.config import ConfigPath, Section, load
from protocol import topics

ENV_PREFIX = "LIFECERT_FLEET"


class BrokerSettings(Section):
    """The fleet's MQTT broker, as devices and central reach it."""

    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        title="broker host",
        description="host name or IP devices and central connect to (goes into the server cert)",
    )
    port: int = Field(
        default=8883, ge=1, le=65535, title="broker port", description="broker TLS port, 1-65535"
    )
    extra_hosts: tuple[str, ...] = Field(
        default=(),
        title="extra server names",
        description="more DNS names or IPs for the broker certificate's SAN",
    )
    pid_file: ConfigPath | None = Field(
        default=Path("broker/mosquitto.pid"),
        title="broker pid file",
        description="pid file of the running Mosquitto; revoke sends it SIGHUP to re-read the CRL",
    )
    reload_command: str = Field(
        default="",
        title="broker reload command",
        description="command run after a revoke instead of the pid file, "
        "e.g. 'systemctl reload mosquitto'",
    )


class PkiSettings(Section):
    """Validity periods, in days."""

    ca_days: int = Field(default=3650, ge=30, title="CA validity", description="days, >= 30")
    device_days: int = Field(
        default=1095, ge=1, title="device cert validity", description="days a device cert lives"
    )
    service_days: int = Field(
        default=825,
        ge=1,
        title="service cert validity",
        description="days the broker and central certificates live",
    )
    crl_days: int = Field(
        default=90,
        ge=1,
        title="CRL validity",
        description="days until the CRL's nextUpdate; re-issue before (lifecert fleet crl)",
    )
    crl_renew_days: int | None = Field(
        default=None,
        ge=1,
        title="CRL renewal margin",
        description="`lifecert fleet crl --renew-if-due` re-issues the CRL once fewer days than "
        "this remain before its nextUpdate; default a third of crl_days",
    )
    crl_keep_expired_days: int = Field(
        default=7,
        ge=0,
        title="CRL entries kept past expiry",
        description="days a certificate a renewal replaced stays in the CRL after it expired "
        "(a margin for clock skew); revoked devices' own certificates stay for good",
    )

    @model_validator(mode="after")
    def _margin_inside_validity(self) -> "PkiSettings":
        if self.crl_renew_days is not None and self.crl_renew_days >= self.crl_days:
            raise ValueError("crl_renew_days must be less than crl_days")
        return self

    @property
    def crl_renew_before(self) -> dt.timedelta:
        """How long before nextUpdate the CRL is due for renewal."""
        if self.crl_renew_days is not None:
            return dt.timedelta(days=self.crl_renew_days)
        return dt.timedelta(days=self.crl_days) / 3

    @property
    def crl_keep_expired(self) -> dt.timedelta:
        """How long an expired replaced certificate stays in the CRL."""
        return dt.timedelta(days=self.crl_keep_expired_days)


class FleetSettings(Section):
    """The whole of ``fleet.toml``."""

    name: str = Field(
        min_length=1, max_length=64, title="fleet name", description="shown in the CA's name"
    )
    root: str = Field(
        default=topics.ROOT, title="topic root", description="MQTT topic prefix, e.g. lifecert/v1"
    )
    broker: BrokerSettings = Field(
        default_factory=BrokerSettings, title="broker", description="a [broker] table"
    )
    pki: PkiSettings = Field(
        default_factory=PkiSettings, title="PKI", description="a [pki] table of validity periods"
    )

    @field_validator("root")
    @classmethod
    def _plain_root(cls, value: str) -> str:
        if (
            not value
            or any(c in value for c in "+#$")
            or value.startswith("/")
            or value.endswith("/")
        ):
            raise ValueError("a plain topic prefix without wildcards or '$', e.g. lifecert/v1")
        return value


def load_settings(path: Path) -> FleetSettings:
    """Read and validate ``fleet.toml``; ``ConfigError`` names any bad field."""
    return load(FleetSettings, path, ENV_PREFIX)
