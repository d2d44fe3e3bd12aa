"""The ``[remote]`` config section: the phone page's address, capacity and limits."""

from pydantic import Field, model_validator

from common.config import ConfigPath, Section


class RemoteSettings(Section):
    """A remote terminal serving phone certifications; off unless this terminal is one."""

    enabled: bool = Field(
        default=False,
        title="remote terminal on",
        description="true: serve the phone page and run phone sessions (no kiosk on the same "
        "terminal)",
    )
    host: str = Field(
        default="127.0.0.1",
        title="listen address",
        description="address to listen on, e.g. 127.0.0.1 behind a TLS reverse proxy",
    )
    port: int = Field(default=8443, ge=1, le=65535, title="port", description="e.g. 8443")
    public_hosts: tuple[str, ...] = Field(
        default=(),
        title="public host names",
        description='Host values phones use, e.g. ["cert.example.gov.cn"]; the listen '
        "address is always allowed",
    )
    tls_cert_file: ConfigPath | None = Field(
        default=None,
        title="TLS certificate",
        description="PEM certificate chain for HTTPS (none: plain HTTP behind a TLS proxy)",
    )
    tls_key_file: ConfigPath | None = Field(
        default=None, title="TLS key", description="PEM key of tls_cert_file"
    )
    forwarded_allow_ips: tuple[str, ...] = Field(
        default=(),
        title="trusted proxies",
        description='proxy addresses whose X-Forwarded-For is believed, e.g. ["127.0.0.1"]',
    )
    max_sessions: int = Field(
        default=3,
        ge=1,
        le=256,
        title="sessions at once",
        description="phone sessions served at once (bench/bench_phone_sessions.py measures it)",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=16,
        title="model copies",
        description="face pipelines loaded, shared by the sessions (one per core at most)",
    )
    frame_max_bytes: int = Field(
        default=256 * 1024,
        ge=8 * 1024,
        le=4 * 1024 * 1024,
        title="largest frame upload",
        description="bytes of one JPEG frame, e.g. 262144",
    )
    frame_max_px: int = Field(
        default=1280,
        ge=160,
        le=4096,
        title="largest frame side",
        description="pixels of a frame's longer side, e.g. 1280",
    )
    idle_s: float = Field(
        default=15.0,
        gt=0,
        le=300,
        title="idle time",
        description="seconds without a frame before a session is abandoned",
    )
    request_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        title="central's answer",
        description="seconds to wait for central to send or check a code",
    )
    code_answer_ms: int = Field(
        default=250,
        ge=0,
        le=5000,
        title="code answer time",
        description="a code request or check is answered no sooner than this many ms after "
        "it arrived, so its time says nothing about the ID number (0: at once)",
    )
    codes_per_address: int = Field(
        default=10,
        ge=1,
        le=10000,
        title="codes per address",
        description="code requests and checks one client address may make per hour",
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> "RemoteSettings":
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both tls_cert_file and tls_key_file, or neither")
        return self
