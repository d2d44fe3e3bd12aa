"""Frozen values the session works with: measures, observations, screens, outcomes, the
draft of a result and the receipt for it, staff orders."""

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal

import numpy as np
from pydantic import ValidationError

from protocol.errors import MessageError
from protocol.messages import (
    AssistedEvidence,
    Channel,
    Decision,
    LivenessEvidence,
    MatchEvidence,
    Method,
)

Document = Literal["id_card", "ss_card", "other"]
Command = Literal["face", "assisted", "vein", "end"]


class Challenge(StrEnum):
    """An action the retiree is asked to do in front of the camera."""

    BLINK = "blink"
    OPEN_MOUTH = "open_mouth"
    TURN_LEFT = "turn_left"
    TURN_RIGHT = "turn_right"
    NOD = "nod"


@dataclass(frozen=True)
class Measures:
    """Landmark measures of one face: eye and mouth openness, yaw and pitch in degrees."""

    eye: float
    mouth: float
    yaw: float
    pitch: float


@dataclass(frozen=True)
class Observation:
    """What one frame shows: how many faces and, for the main face, its measures and quality."""

    timestamp: float
    faces: int
    measures: Measures | None = None
    face_width: float = 0.0
    brightness: float = 0.0
    sharpness: float = 0.0


@dataclass(frozen=True)
class Probe:
    """A live face template (float32[128]), the passive liveness score when there is a model
    with the threshold it must reach (the signed bundle's), and the aligned face chip it came
    from (in memory only: never stored or sent)."""

    template: np.ndarray = field(repr=False)
    pad_score: float | None = None
    chip: np.ndarray | None = field(default=None, repr=False, compare=False)
    pad_threshold: float | None = None

    @property
    def pad_passed(self) -> bool:
        """No PAD model, or its score reaches its threshold (a score without one fails)."""
        if self.pad_score is None:
            return True
        return self.pad_threshold is not None and self.pad_score >= self.pad_threshold


@dataclass(frozen=True)
class Comparison:
    """One face or vein comparison: score, threshold, decision."""

    score: float
    threshold: float
    matched: bool


@dataclass(frozen=True)
class Reference:
    """The template the live face is compared with and where it came from."""

    template: np.ndarray = field(repr=False)
    kind: str  # "template" (last certified) or "card_photo"


@dataclass(frozen=True)
class Screen:
    """What the kiosk shows (and the speaker says): a step, a prompt and its details."""

    step: str  # idle, card, capture, challenge, matching, vein, done, staff, status
    prompt: str  # key into edge.session.prompts.TEXTS
    attempt: int = 0
    challenge: str | None = None
    deadline: float | None = None  # clock time the current step times out
    seconds_left: float | None = None
    receipt: str | None = None
    decision: str | None = None
    retiree: str | None = None  # masked ID number
    language: str = "zh"
    status: dict[str, str | None] | None = field(default=None, compare=False)  # status lookup
    token: str | None = None  # the pass's signed receipt, shown as a QR code
    token_state: str | None = None  # waiting (central has none yet), ready, later


@dataclass(frozen=True)
class Attempt:
    """One face attempt: what liveness and the match said."""

    captured: bool
    challenges: tuple[str, ...] = ()
    live: bool = False
    pad_score: float | None = None
    comparison: Comparison | None = None
    reason: str = ""


@dataclass(frozen=True)
class Outcome:
    """How a session ended: the decision, the prompt shown, the receipt if one was stored."""

    decision: str  # pass, fail, refer, none (nothing recorded)
    prompt: str
    retiree_id: str | None = None
    method: str | None = None
    receipt: str | None = None
    result_id: str | None = None
    attempts: tuple[Attempt, ...] = ()


@dataclass(frozen=True)
class Draft:
    """A certification outcome before it gets its id, ``seq``, time and signature.

    ``template`` is the new face template and ``vein_template`` a vein template enrolled
    at the desk, both in clear; the recorder seals them to central before anything is stored.
    """

    retiree_id: str
    method: Method
    decision: Decision
    channel: Channel = Channel.KIOSK
    match: MatchEvidence | None = None
    liveness: LivenessEvidence | None = None
    assisted: AssistedEvidence | None = None
    template: bytes | None = None
    vein_template: bytes | None = None


@dataclass(frozen=True)
class Receipt:
    """Proof that a result is durably stored: its id and sequence number."""

    result_id: str
    seq: int
    created_at: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class Order:
    """A staff command from the desk screen with what it needs."""

    command: Command
    document: Document = "id_card"
    note: str = ""


def assisted(
    retiree_id: str, staff_id: str, document: Document = "id_card", note: str = ""
) -> Draft:
    """A desk certification: a staff member saw the retiree in person."""
    try:
        evidence = AssistedEvidence(staff_id=staff_id, document=document, note=note)
    except ValidationError as exc:
        raise MessageError(describe(exc)) from None
    return Draft(
        retiree_id=retiree_id,
        method=Method.ASSISTED,
        decision=Decision.PASS,
        channel=Channel.DESK,
        assisted=evidence,
    )


def describe(exc: ValidationError) -> str:
    """The fields pydantic refused and why, on one line."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<result>'}: {e['msg']}" for e in exc.errors()
    )
