"""The ``[kiosk]`` config section: whether the kiosk runs, where it listens, the PIN lock-out."""

from pydantic import Field, model_validator

from common.config import ConfigPath, Section


class KioskSettings(Section):
    """The local web app Chromium shows full-screen; off unless a terminal has a kiosk."""

    enabled: bool = Field(
        default=False,
        title="kiosk on",
        description="true: run the certification session and serve the kiosk page",
    )
    host: str = Field(
        default="127.0.0.1",
        title="listen address",
        description="keep it on loopback",
    )
    port: int = Field(default=8080, ge=1, le=65535, title="port", description="e.g. 8080")
    staff_file: ConfigPath | None = Field(
        default=None,
        title="staff PINs",
        description="'staff_id:<scrypt hash>' lines (edge.session.desk.hash_pin); none: no desk",
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

    @model_validator(mode="after")
    def _lockouts_ordered(self) -> "KioskSettings":
        if self.pin_lockout_max_s < self.pin_lockout_s:
            raise ValueError("pin_lockout_max_s must be at least pin_lockout_s")
        return self
