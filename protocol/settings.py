"""Config sections shared by edge, central and provisioning (which writes them)."""

import os
from pathlib import Path
from typing import Final

from pydantic import Field

from common.config import ConfigPath, Section
from common.errors import ConfigError
from protocol import topics

PASSWORD_CREDENTIAL: Final = "mqtt.password"
"""Name of the broker password as a systemd credential (``LoadCredential=mqtt.password:…``)."""


class TlsFiles(Section):
    """Mutual TLS: the fleet CA and this client's certificate and key (PEM)."""

    ca_file: ConfigPath = Field(
        title="CA certificate", description="PEM file of the fleet CA that signed the broker"
    )
    cert_file: ConfigPath = Field(
        title="client certificate", description="PEM file of this client's X.509 certificate"
    )
    key_file: ConfigPath = Field(
        title="client key", description="PEM file of this client's P-256 private key"
    )


class MqttSettings(Section):
    """Where the broker is and how to reach it."""

    host: str = Field(default="127.0.0.1", title="broker host", description="broker host name")
    port: int = Field(
        default=8883, ge=1, le=65535, title="broker port", description="broker TLS port, 1-65535"
    )
    root: str = Field(
        default=topics.ROOT, title="topic root", description="topic prefix, e.g. lifecert/v1"
    )
    keepalive: int = Field(
        default=30, ge=5, le=3600, title="keepalive", description="MQTT keepalive in seconds"
    )
    tls: TlsFiles = Field(title="TLS files", description="mutual TLS files (a [mqtt.tls] table)")
    password_file: ConfigPath | None = Field(
        default=None,
        title="broker password file",
        description="file holding this client's broker password (one line, from the "
        "enrolment bundle); a systemd credential mqtt.password takes precedence",
    )


class CentralKeys(Section):
    """Central's public keys, as a terminal holds them."""

    sign_pub: ConfigPath = Field(
        title="central signing key",
        description="PEM public key central signs acks and replies with",
    )
    seal_pub: ConfigPath = Field(
        title="central sealing key",
        description="PEM public key templates are sealed to (JWE ECDH-ES)",
    )
    model_sign_pub: ConfigPath | None = Field(
        default=None,
        title="model-signing key",
        description="PEM public key model bundles must be signed with",
    )


def read_password(settings: MqttSettings) -> str | None:
    """The broker password: credential ``mqtt.password``, else ``password_file``, else None.

    ``ConfigError`` (naming ``mqtt.password_file``) if the file cannot be read or is empty.
    """
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    path: Path | None = settings.password_file
    if creds and (Path(creds) / PASSWORD_CREDENTIAL).exists():
        path = Path(creds) / PASSWORD_CREDENTIAL
    if path is None:
        return None
    try:
        password = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ConfigError(f"mqtt.password_file: cannot read {path}: {reason}") from None
    if not password:
        raise ConfigError(
            f"mqtt.password_file: {path} is empty: copy mqtt.password from the enrolment bundle"
        )
    return password
