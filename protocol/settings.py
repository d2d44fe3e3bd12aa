"""Config sections shared by edge, central and provisioning (which writes them)."""

from pydantic import Field

from protocol import topics
from protocol.config import ConfigPath, Section


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
