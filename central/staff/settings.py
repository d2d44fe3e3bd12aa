"""The ``[staff]`` section of ``central.toml``: the staff CA's files, lockout, second
factors, sessions."""

from pathlib import Path

from pydantic import Field

from common.config import ConfigPath, Section


class StaffSettings(Section):
    """Staff sign-in: the staff CA (kept apart from the fleet's device CA) and its rules."""

    ca_file: ConfigPath = Field(
        default=Path("staff-ca/ca.pem"),
        title="staff CA",
        description="PEM certificate of the staff CA (the console's TLS trusts it for clients)",
    )
    ca_key: ConfigPath = Field(
        default=Path("staff-ca/ca.key"),
        title="staff CA key",
        description="PEM private key of the staff CA (needed to issue and revoke only)",
    )
    crl_file: ConfigPath = Field(
        default=Path("staff-ca/crl.pem"),
        title="staff CRL",
        description="PEM CRL of revoked staff certificates, rewritten by `staff cert revoke`",
    )
    cert_days: int = Field(
        default=365,
        ge=1,
        le=825,
        title="certificate validity",
        description="days a newly issued staff certificate is valid",
    )
    crl_days: int = Field(
        default=30,
        ge=1,
        le=366,
        title="CRL validity",
        description="days a written CRL is valid (re-sign with `staff ca crl` before then)",
    )
    max_failed_logins: int = Field(
        default=5,
        ge=1,
        le=100,
        title="failed logins before lockout",
        description="failed sign-ins in a row that lock the account until an administrator "
        "unlocks it",
    )
    otp_key_file: ConfigPath = Field(
        default=Path("staff-otp.key"),
        title="second factor key",
        description="32-byte AES-256-GCM key (raw or hex) that encrypts staff TOTP secrets at "
        "rest; `staff ca init` or `staff otp init-key` writes one",
    )
    seal_interval_s: float = Field(
        default=60.0,
        gt=0,
        le=86_400,
        title="event sealing interval",
        description="seconds between rounds in which `run` adds new events to the audit chain",
    )
    session_minutes: int = Field(
        default=30,
        ge=1,
        le=24 * 60,
        title="session length",
        description="minutes a console session lasts before signing in again",
    )
