"""The ``[models]`` config section a terminal uses to open its face pipeline."""

from pathlib import Path

from pydantic import Field

from common.config import ConfigPath, Section


class ModelsSettings(Section):
    """Where the signed model bundle is and how the TFLite runtime runs it.

    The bundle is verified with ``[central] model_sign_pub`` before any model is loaded.
    """

    bundle: ConfigPath = Field(
        default=Path("models"),
        title="model bundle",
        description="folder of the signed model bundle (manifest.json, manifest.jws, *.tflite)",
    )
    threads: int = Field(
        default=1, ge=1, le=8, title="TFLite threads", description="interpreter threads, 1-8"
    )
