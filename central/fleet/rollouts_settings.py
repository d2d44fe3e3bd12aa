"""The ``[rollout]`` section of ``central.toml``: desired config, commands, bundle server."""

from pathlib import Path

from pydantic import Field

from common.config import ConfigPath, Section


class RolloutSettings(Section):
    """How central publishes desired config and commands and serves rollout bundles."""

    bundle_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        title="bundle server port",
        description="HTTPS port terminals download rollout bundles from (mutual TLS); 0 = off",
    )
    bundle_bind: str = Field(
        default="127.0.0.1", title="bundle server address", description="address to listen on"
    )
    bundle_url: str | None = Field(
        default=None,
        pattern=r"^https://[^\s/]+(:\d+)?$",
        title="bundle server URL",
        description="https://host:port terminals use (default https://<bundle_bind>:<port>); "
        "the host must be in the server certificate",
    )
    server_cert: ConfigPath = Field(
        default=Path("bundles.pem"),
        title="bundle server certificate",
        description="PEM certificate of the bundle server, issued by the fleet CA",
    )
    server_key: ConfigPath = Field(
        default=Path("bundles.key"),
        title="bundle server key",
        description="PEM key of the bundle server certificate",
    )
    store_dir: ConfigPath = Field(
        default=Path("rollouts"),
        title="rollout store",
        description="folder where rollout bundles are kept as signed, hashed archives",
    )
    model_sign_pub: ConfigPath = Field(
        default=Path("../models/sign.pub.pem"),
        title="model-signing key",
        description="PEM public key a model bundle must be signed with to be rolled out",
    )
    max_bundle_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        le=512 * 1024 * 1024,
        title="largest bundle",
        description="bytes a rollout bundle may have at most",
    )
    command_ttl_s: int = Field(
        default=3600,
        ge=1,
        le=7 * 86400,
        title="command lifetime",
        description="seconds a command stays valid (a terminal refuses it afterwards)",
    )
    update_ttl_s: int = Field(
        default=86400,
        ge=60,
        le=7 * 86400,
        title="update offer lifetime",
        description="seconds a rollout's offer to one terminal stays valid",
    )
    drift_after_s: int = Field(
        default=600,
        ge=0,
        le=30 * 86400,
        title="drift after",
        description="seconds a terminal may report an older config before it counts as drift",
    )
    publish_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        title="publish interval",
        description="seconds between looks for new desired configs and queued commands",
    )
