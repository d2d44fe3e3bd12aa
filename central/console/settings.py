"""The ``[console]`` section of ``central.toml``."""

from pathlib import Path

from pydantic import Field

from common.config import ConfigPath, Section


class ConsoleSettings(Section):
    """Where and how the staff console is served (HTTPS, staff client certificates only:
    the staff CA and its CRL are ``[staff] ca_file`` and ``crl_file``; a session ends after
    ``[staff] session_minutes`` without a request)."""

    host: str = Field(default="127.0.0.1", title="host", description="address to listen on")
    port: int = Field(default=8443, ge=1, le=65535, title="port", description="HTTPS port")
    cert_file: ConfigPath = Field(
        default=Path("console/server.pem"),
        title="server certificate",
        description="PEM certificate (chain) the console presents to browsers",
    )
    key_file: ConfigPath = Field(
        default=Path("console/server.key"),
        title="server key",
        description="PEM private key of cert_file",
    )
    session_max_hours: int = Field(
        default=10,
        ge=1,
        le=72,
        title="session lifetime",
        description="hours after sign-in after which a session expires however busy",
    )
    max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        title="request size limit",
        description="largest request body accepted (bytes); larger ones get 413",
    )
    dashboard_cache_s: float = Field(
        default=10,
        ge=0,
        le=600,
        title="dashboard freshness",
        description="seconds the dashboard's figures are reused for the same view (0: never)",
    )
    page_size: int = Field(
        default=100, ge=10, le=1000, title="page size", description="rows per drill-down page"
    )
    export_limit: int = Field(
        default=1_000_000,
        ge=1000,
        title="CSV export limit",
        description="most rows one CSV export writes",
    )
