"""The ``[kiosk]`` config section: whether the service runs the kiosk and where it listens."""

from pydantic import Field

from common.config import ConfigPath, Section


class KioskSettings(Section):
    """The local web app Chromium shows full-screen; off unless a terminal has a kiosk."""

    enabled: bool = Field(
        default=False,
        title="kiosk on",
        description="true: run the certification session and serve the kiosk page",
    )
    host: str = Field(
        default="127.0.0.1", title="listen address", description="keep it on loopback"
    )
    port: int = Field(default=8080, ge=1, le=65535, title="port", description="e.g. 8080")
    staff_file: ConfigPath | None = Field(
        default=None,
        title="staff PINs",
        description="'staff_id:<scrypt hash>' lines (edge.session.desk.hash_pin); none: no desk",
    )
