"""The ``[kiosk]`` config section: whether the kiosk runs, where it listens, the PIN lock-out."""

import ipaddress

from pydantic import Field, ValidationInfo, field_validator, model_validator

from common.config import ConfigPath, Section

_WILDCARDS = ("0.0.0.0", "::", "")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class KioskSettings(Section):
    """The local web app Chromium shows full-screen; off unless a terminal has a kiosk."""

    enabled: bool = Field(
        default=False,
        title="kiosk on",
        description="true: run the certification session and serve the kiosk page",
    )
    allow_remote: bool = Field(
        default=False,
        title="serve beyond loopback",
        description=(
            "true lets host be a LAN address: anyone on that network then reaches the staff "
            "log-in and the camera preview, and PINs cross it unencrypted (plain HTTP); keep "
            "false unless the kiosk browser runs on another machine"
        ),
    )
    host: str = Field(
        default="127.0.0.1",
        title="listen address",
        description="the address in the kiosk browser's URL, on loopback, e.g. 127.0.0.1",
    )
    port: int = Field(default=8080, ge=1, le=65535, title="port", description="e.g. 8080")
    staff_file: ConfigPath | None = Field(
        default=None,
        title="staff PINs",
        description="'staff_id:<scrypt hash>' lines (edge.kiosk.desk.hash_pin); none: no desk",
    )
    staff_directory: ConfigPath | None = Field(
        default=None,
        title="staff directory",
        description="central's signed staff directory for this site (lifecert-central staff "
        "directory); set: only staff it lists may log in at the desk",
    )
    pin_max_failures: int = Field(
        default=5,
        ge=1,
        le=100,
        title="wrong PINs per staff id",
        description="wrong PINs in a row that lock a staff id, e.g. 5",
    )
    pin_max_failures_all: int = Field(
        default=20,
        ge=1,
        le=1000,
        title="wrong PINs in all",
        description="wrong PINs for any ids, with no log-in between, that lock every id, e.g. 20",
    )
    pin_lockout_s: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        title="first lock-out",
        description="seconds of the first lock-out; each next one doubles, e.g. 300",
    )
    pin_lockout_max_s: float = Field(
        default=3600.0,
        gt=0,
        le=7 * 86400,
        title="longest lock-out",
        description="cap in seconds on a doubled lock-out, e.g. 3600",
    )

    @field_validator("host")
    @classmethod
    def _local_unless_allowed(cls, host: str, info: ValidationInfo) -> str:
        if host in _WILDCARDS:
            raise ValueError(
                f'{host!r} listens on every network: set host = "127.0.0.1" '
                "(or, with allow_remote = true, the one address the kiosk browser uses)"
            )
        if not is_loopback(host) and not info.data.get("allow_remote", False):
            raise ValueError(
                f"{host!r} is not a loopback address and would expose the staff log-in and "
                'camera preview to the network: set host = "127.0.0.1", or set '
                "allow_remote = true in [kiosk] if the kiosk browser runs elsewhere"
            )
        return host

    @model_validator(mode="after")
    def _lockouts_ordered(self) -> "KioskSettings":
        if self.pin_lockout_max_s < self.pin_lockout_s:
            raise ValueError("pin_lockout_max_s must be at least pin_lockout_s")
        return self
