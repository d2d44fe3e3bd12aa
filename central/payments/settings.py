"""The ``[payments]`` and ``[bank]`` (with ``[bank.sftp]``) sections of ``central.toml``."""

from pathlib import Path
from typing import Any

from pydantic import Field

from common.config import ConfigPath, Section

_EMPTY: Any = {}  # a missing section is validated from {} so its paths resolve like given ones


class PaymentSettings(Section):
    """Which months a payment run may be for: a mistyped month is refused, never stored."""

    months_ahead: int = Field(
        default=1,
        ge=0,
        le=12,
        title="months ahead",
        description="how many months after the current one (in [policy] timezone) a run may "
        "be for; 1 lets next month's run be computed before its payday",
    )
    months_back: int = Field(
        default=12,
        ge=0,
        le=600,
        title="months back",
        description="how many months before the current one a run may be for (catching up); "
        "never before the roster's first month, the month of its first import",
    )


class SftpSettings(Section):
    """The bank's SFTP drop: host key pinned, key-based login."""

    host: str = Field(default="127.0.0.1", title="SFTP host", description="the bank's SFTP host")
    port: int = Field(default=22, ge=1, le=65535, title="SFTP port", description="1-65535")
    username: str = Field(default="lifecert", title="user", description="SFTP login name")
    key_file: ConfigPath = Field(
        default=Path("bank/sftp.key"),
        title="client key",
        description="OpenSSH private key central logs in with",
    )
    host_key: ConfigPath = Field(
        default=Path("bank/host_key.pub"),
        title="pinned host key",
        description="the bank server's public host key (one OpenSSH line, e.g. "
        "'ssh-ed25519 AAAA...'); any other key is refused",
    )
    remote_dir: str = Field(
        default="incoming",
        title="remote folder",
        description="folder on the server that payment files are uploaded to",
    )
    timeout_s: float = Field(
        default=20.0, gt=0, le=600, title="timeout", description="seconds to connect"
    )


class BankSettings(Section):
    """Bank payment files: who pays, whose key they are encrypted for, where they go."""

    payer: str = Field(
        default="LIFECERT",
        pattern=r"^[A-Za-z0-9_-]{1,32}$",
        title="payer code",
        description="our code in the bank file header (letters, digits, _ -)",
    )
    encrypt_pub: ConfigPath = Field(
        default=Path("bank/bank-encrypt.pub.pem"),
        title="bank encryption key",
        description="the bank's PEM public key files are encrypted for (P-256 or RSA >= 2048)",
    )
    return_sign_pub: ConfigPath = Field(
        default=Path("bank/bank-sign.pub.pem"),
        title="bank signing key",
        description="the bank's PEM public key its signed return files are verified with",
    )
    out_dir: ConfigPath = Field(
        default=Path("bank/out"),
        title="output folder",
        description="where sealed payment files are written before delivery",
    )
    sftp: SftpSettings = Field(default=_EMPTY, title="SFTP", description="a [bank.sftp] table")
