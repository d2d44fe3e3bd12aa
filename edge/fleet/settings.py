"""The ``[fleet]`` section of ``edge.toml``: how the terminal takes config, commands, updates."""

from pydantic import Field

from common.config import ConfigPath, Section


class FleetSettings(Section):
    """Self-test images and bounds on what central may send."""

    selftest_dir: ConfigPath | None = Field(
        default=None,
        title="self-test images",
        description="folder with cases.json ([{a, b, match}]) and the face images it names; "
        "a new model bundle must match and not match them as listed before it is kept",
    )
    max_bundle_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        le=512 * 1024 * 1024,
        title="largest bundle",
        description="bytes an update may have at most (larger offers are refused)",
    )
    probation_s: float = Field(
        default=600.0,
        ge=0,
        le=7 * 86400,
        title="probation",
        description="seconds after an update within which a third start of the service rolls "
        "the new release back; 0 = off",
    )
    probation_sessions: int = Field(
        default=10,
        ge=0,
        le=10000,
        title="probation sessions",
        description="sessions after an update whose errors judge the new release (errors "
        "only, not honest fails); 0 = off",
    )
    probation_max_error_rate: float = Field(
        default=0.3,
        ge=0,
        le=1,
        title="probation error rate",
        description="share of the probation sessions that may end in an error; more rolls "
        "the new release back",
    )
    download_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        title="download timeout",
        description="seconds without progress after which a download is given up",
    )
