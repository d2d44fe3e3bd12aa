"""The ``[phone]`` section of ``central.toml``: who may ask for codes, and their limits."""

from pydantic import Field, field_validator

from common.config import Section
from protocol import topics


class PhoneSettings(Section):
    """One-time codes for the phone channel (docs/phone.md)."""

    remote_devices: tuple[str, ...] = Field(
        default=(),
        title="remote terminals",
        description='device ids of the remote terminals that may ask, e.g. ["remote-01"]; '
        "none: the phone channel is off",
    )
    channel: str = Field(
        default="sms",
        pattern=r"^[a-z]{1,16}$",
        title="notify channel",
        description="the [notify] channel codes go out on, e.g. sms",
    )
    code_ttl_s: int = Field(
        default=300, ge=60, le=1800, title="code lifetime", description="seconds, e.g. 300"
    )
    max_tries: int = Field(
        default=5, ge=1, le=10, title="tries per code", description="wrong codes before it locks"
    )
    per_id_per_day: int = Field(
        default=5,
        ge=1,
        le=100,
        title="codes per ID number",
        description="codes one ID number may be sent in 24 hours (known or not)",
    )
    per_phone_per_day: int = Field(
        default=5,
        ge=1,
        le=100,
        title="codes per phone",
        description="codes one phone number is sent in 24 hours (more are silently not sent)",
    )
    per_client_per_hour: int = Field(
        default=20,
        ge=1,
        le=10000,
        title="requests per client address",
        description="code requests and checks one phone's address may make in an hour",
    )

    @field_validator("remote_devices")
    @classmethod
    def _device_ids(cls, ids: tuple[str, ...]) -> tuple[str, ...]:
        for device_id in ids:
            topics.check_device_id(device_id)
        return ids
