"""The ``[session]`` config section: time limits, quality gates, liveness limits."""

import logging
from typing import Any

from pydantic import Field, model_validator

from common.config import Section
from edge.session.model import Challenge

log = logging.getLogger(__name__)


class SessionSettings(Section):
    """How patient the kiosk is and what it accepts; the defaults suit elderly users.

    The PAD and vein thresholds are not settings: they come from the signed model bundle.
    """

    attempts: int = Field(
        default=3, ge=1, le=5, title="face attempts", description="face attempts before fallback"
    )
    capture_s: float = Field(
        default=20.0, gt=0, le=120, title="capture time", description="seconds to find a face"
    )
    challenge_s: float = Field(
        default=10.0, gt=0, le=60, title="challenge time", description="seconds per challenge"
    )
    challenges: tuple[Challenge, ...] = Field(
        default=tuple(Challenge),
        min_length=1,
        title="challenges",
        description='actions to pick two from, e.g. ["blink", "turn_left", "nod"]',
    )
    steady_frames: int = Field(
        default=2, ge=1, le=30, title="steady frames", description="good frames before capture"
    )
    min_face_px: float = Field(
        default=80, gt=0, title="minimum face width", description="pixels; smaller: come closer"
    )
    min_brightness: float = Field(
        default=50, ge=0, le=255, title="minimum brightness", description="0-255; less: more light"
    )
    min_sharpness: float = Field(
        default=5, ge=0, title="minimum sharpness", description="Laplacian variance; less: blur"
    )
    max_pose_deg: float = Field(
        default=25, gt=0, le=90, title="frontal pose", description="largest yaw/pitch to capture"
    )
    turn_deg: float = Field(
        default=18, gt=0, le=60, title="turn", description="yaw change that counts as a turn"
    )
    nod_deg: float = Field(
        default=10, gt=0, le=45, title="nod", description="pitch change that counts as a nod"
    )
    blink_ratio: float = Field(
        default=0.6, gt=0, lt=1, title="blink", description="eye openness under this x baseline"
    )
    mouth_open: float = Field(
        default=0.3, gt=0, le=1, title="open mouth", description="lip gap / mouth width to count"
    )
    vein_timeout_s: float = Field(
        default=30, gt=0, le=300, title="vein time", description="seconds to place a finger"
    )
    central_templates: bool = Field(
        default=True,
        title="ask central",
        description="ask central for the last certified template (false: cache and card photo)",
    )
    template_timeout_s: float = Field(
        default=3.0,
        gt=0,
        le=30,
        title="template wait",
        description="seconds to wait for central's template before using the card photo",
    )
    card_poll_s: float = Field(
        default=0.3, gt=0, le=5, title="card poll", description="seconds between card polls"
    )
    result_screen_s: float = Field(
        default=20, ge=0, le=600, title="result screen", description="seconds the result shows"
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_pad_threshold(cls, data: Any) -> Any:
        """Old configs' ``pad_threshold`` is ignored (with a warning), so they still load."""
        if isinstance(data, dict) and "pad_threshold" in data:
            data = {k: v for k, v in data.items() if k != "pad_threshold"}
            log.warning(
                "[session] pad_threshold is ignored: the PAD threshold comes from the signed "
                "model bundle's manifest (thresholds.pad); remove the key"
            )
        return data
