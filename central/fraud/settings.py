"""The ``[duplicates]`` section of ``central.toml``."""

from pathlib import Path

from pydantic import Field

from common.config import ConfigPath, Section


class DuplicateSettings(Section):
    """1:N face search over stored templates."""

    key_file: ConfigPath = Field(
        default=Path("templates.key"),
        title="template key",
        description="32-byte AES-256-GCM key (raw or hex) that encrypts templates at rest; "
        "`lifecert-central duplicates init-key` writes one",
    )
    distance: float = Field(
        default=0.71,
        gt=0,
        le=2,
        title="duplicate distance",
        description="distance of unit-length templates at or under which two are flagged as "
        "one face; the default is SFace's at FMR 1e-6 per pair on LFW, far stricter than the "
        "1:1 threshold (1.07) because one query meets N people",
    )
