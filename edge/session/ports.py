"""The ports the session core talks to; real adapters live in ``adapters``, fakes in tests."""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from common.errors import LifecertError
from edge.session.model import Comparison, Draft, Observation, Order, Probe, Receipt, Screen
from hal.camera import Frame
from hal.card.identity import Identity
from hal.vein import Prompt
from protocol.lookups import StatusData


class UnknownRetireeError(LifecertError, LookupError):
    """Central does not know this person (not in the pension roster)."""


class CentralUnavailableError(LifecertError, ConnectionError):
    """Central cannot be asked now (offline terminal, central down, rate-limited)."""


class Cards(Protocol):
    """A card reader: the card on it, ``None`` without one; ``CardReadError`` if unreadable."""

    def poll(self) -> Identity | None: ...


class Camera(Protocol):
    """The next frame (blocking at the camera's pace)."""

    def read(self) -> Frame: ...


class Faces(Protocol):
    """The face pipeline: cheap per-frame observation, templates on demand, comparison.

    ``model`` names the bundle for evidence; ``template_model`` the embedder, for templates.
    """

    model: str
    template_model: str

    def observe(self, frame: Frame) -> Observation: ...

    def probe(self, frame: Frame) -> Probe | None: ...

    def keep(self, probe: Probe) -> np.ndarray:
        """The template to keep as the retiree's next reference, from a certified probe."""
        ...

    def photo_template(self, rgb: np.ndarray) -> np.ndarray | None: ...

    def compare(self, probe: np.ndarray, reference: np.ndarray, mode: str) -> Comparison: ...


class Veins(Protocol):
    """Vein sensor plus matcher: a packed template from a finger, and comparison."""

    model: str

    def capture(self, timeout: float, on_prompt: Callable[[Prompt], None]) -> bytes: ...

    def compare(self, reference: bytes, probe: bytes) -> Comparison: ...


class References(Protocol):
    """Reference templates: last certified face template (central or cache), enrolled vein."""

    def face(self, retiree_id: str) -> np.ndarray | None: ...

    def remember_face(self, retiree_id: str, template: np.ndarray) -> None: ...

    def vein(self, retiree_id: str) -> bytes | None: ...

    def enrol_vein(self, retiree_id: str, template: bytes) -> None: ...


class Recorder(Protocol):
    """Signs and stores a draft; returns only once it is durable."""

    def record(self, draft: Draft) -> Receipt: ...


class Desk(Protocol):
    """Assisted desk mode: the logged-in staff member (``None``: nobody) and their commands."""

    @property
    def staff(self) -> str | None: ...

    def next(self, timeout: float) -> Order | None:
        """The next command, or ``None`` after ``timeout`` seconds."""
        ...


class Voice(Protocol):
    """Speaks a prompt (may return before it has been spoken)."""

    def say(self, text: str, lang: str = "zh") -> None: ...


class Display(Protocol):
    """The kiosk screen: the current step and a live preview."""

    def show(self, screen: Screen) -> None: ...

    def preview(self, frame: Frame, observation: Observation) -> None: ...


class Clock(Protocol):
    """Monotonic seconds, today's date, and sleeping."""

    def now(self) -> float: ...

    def today(self) -> dt.date: ...

    def sleep(self, seconds: float) -> None: ...


class Lookups(Protocol):
    """What central says to a card's holder: their status, the receipt of a pass."""

    def status(self, retiree_id: str) -> StatusData:
        """``UnknownRetireeError`` for a stranger, ``CentralUnavailableError`` when offline."""
        ...

    def receipt(self, result_id: str) -> str | None:
        """The signed receipt of this terminal's result, ``None`` while central has none."""
        ...

    def last_receipt(self, retiree_id: str) -> str | None:
        """The receipt of this terminal's newest pass for the retiree, if central has it."""
        ...


class Choices(Protocol):
    """What the person chose on screen before inserting the card (``"status"``), once."""

    def take(self) -> str | None: ...


@dataclass(frozen=True)
class Ports:
    """Everything a session needs from the world."""

    cards: Cards
    camera: Camera
    faces: Faces
    references: References
    recorder: Recorder
    voice: Voice
    display: Display
    clock: Clock
    veins: Veins | None = None
    lookups: Lookups | None = None
    choices: Choices | None = None
