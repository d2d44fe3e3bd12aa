"""Phone sessions: one ``edge.session.core.Session`` per retiree, fed by their phone.

After central has checked the one-time code, :meth:`Sessions.start` runs the kiosk's own
certification (``Session.certify`` with channel ``mobile``) on a thread, against the
retiree's last certified template, with an :class:`~edge.remote.camera.UploadCamera` as its
camera. The phone only sends frames and reads screens; every decision is the session
core's, and the result is signed and stored by this terminal's recorder before "done" shows.
Frames live in memory and go with the session; templates are never kept here.
"""

import datetime as dt
import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.adapters.devices import SystemClock
from edge.remote import prompts as phone_prompts
from edge.remote.camera import UploadCamera
from edge.remote.faces import FacePool, PooledFaces
from edge.session.core import Session, mask
from edge.session.model import Draft, Observation, Outcome, Receipt, Screen
from edge.session.ports import Ports
from edge.session.settings import SessionSettings
from hal.camera import Frame
from hal.card.identity import Identity
from hal.errors import CameraError
from protocol.messages import Channel

log = logging.getLogger(__name__)

_KEEP_ENDED_S = 120.0  # an ended session's last screen stays readable this long


class PhoneDisplay:
    """The ``Display`` port of one phone session: its latest screen, long-polled by the page."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._screen = Screen(step="ready", prompt="ready")
        self._version = 0

    def show(self, screen: Screen) -> None:
        with self._cond:
            self._screen = screen
            self._version += 1
            self._cond.notify_all()

    def preview(self, frame: Frame, observation: Observation) -> None:
        """The phone shows its own camera; nothing to send back."""

    def wait(self, after: int, timeout: float) -> None:
        """Block until the version passes ``after`` or ``timeout`` seconds pass."""
        with self._cond:
            self._cond.wait_for(lambda: self._version > after, timeout)

    def state(self) -> dict[str, Any]:
        """The current screen with its texts in both languages."""
        with self._cond:
            screen, version = self._screen, self._version
        data: dict[str, Any] = {
            "version": version,
            "step": screen.step,
            "prompt": screen.prompt,
            "text": phone_prompts.text(screen.prompt),
            "language": screen.language,
            "attempt": screen.attempt,
            "challenge": screen.challenge,
            "seconds_left": screen.seconds_left,
            "receipt": screen.receipt,
            "decision": screen.decision,
            "retiree": screen.retiree,
        }
        return data


class SilentVoice:
    """The phone speaks the prompts itself (the page's speech synthesis)."""

    def say(self, text: str, lang: str = "zh") -> None:
        """Nothing to say on the server."""


class NoCards:
    """A phone session has no card reader: the retiree was identified by the code."""

    def poll(self) -> Identity | None:
        return None


@dataclass
class GivenReference:
    """The ``References`` port of one session: the template central sent, in memory only."""

    template: np.ndarray = field(repr=False)

    def face(self, retiree_id: str) -> np.ndarray | None:
        return self.template

    def remember_face(self, retiree_id: str, template: np.ndarray) -> None:
        """Kept by central only (it arrives sealed in the result)."""

    def vein(self, retiree_id: str) -> bytes | None:
        return None

    def enrol_vein(self, retiree_id: str, template: bytes) -> None:
        raise NotImplementedError("no vein enrolment from a phone")


Record = Callable[[Draft], Receipt]


class SerialRecorder:
    """The ``Recorder`` port shared by all sessions: records run one at a time on the thread
    that owns the outbox (SQLite connections stay on their thread)."""

    def __init__(self) -> None:
        self._queue: list[tuple[Draft, Future[Receipt]]] = []
        self._cond = threading.Condition()

    def record(self, draft: Draft) -> Receipt:
        future: Future[Receipt] = Future()
        with self._cond:
            self._queue.append((draft, future))
            self._cond.notify_all()
        return future.result()

    def serve(self, record: Record, stop: threading.Event) -> None:
        """Store queued drafts with ``record`` until ``stop`` is set (run on the owning thread)."""
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue) or stop.is_set(), 0.5)
                if not self._queue:
                    if stop.is_set():
                        return
                    continue
                draft, future = self._queue.pop(0)
            try:
                future.set_result(record(draft))
            except BaseException as exc:  # the session thread raises it
                future.set_exception(exc)


def phone_identity(retiree_id: str) -> Identity:
    """The "card" of a phone session: the ID number the code was checked for, no photo."""
    return Identity(
        id_number=retiree_id,
        name="",
        sex="",
        nation="",
        birth_date=dt.date(1900, 1, 1),
        source="phone",
        photo_reason="phone channel: identified by a one-time code",
    )


class PhoneSession:
    """One retiree's certification from their phone."""

    def __init__(
        self,
        retiree_id: str,
        session: Session,
        camera: UploadCamera,
        display: PhoneDisplay,
    ) -> None:
        self.retiree_id = retiree_id
        self.token = secrets.token_urlsafe(32)
        self.session, self.camera, self.display = session, camera, display
        self.outcome: Outcome | None = None
        self.ended_at: float | None = None
        self._thread = threading.Thread(target=self._run, name="phone-session", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self.outcome = self.session.certify(phone_identity(self.retiree_id), Channel.MOBILE)
        except CameraError as exc:
            log.info("phone session for %s abandoned: %s", mask(self.retiree_id), exc)
            self.session.show("done", "abandoned", speak=False, decision="none")
        except Exception:
            log.exception("phone session for %s failed", mask(self.retiree_id))
            self.session.show("done", "abandoned", speak=False, decision="none")
        finally:
            self.camera.close()  # frames go with the session
            self.ended_at = time.monotonic()

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    def end(self) -> None:
        """Stop taking frames (the session core then ends as abandoned)."""
        self.camera.close()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


class BusyError(RuntimeError):
    """Every session place is taken."""


class Sessions:
    """The phone sessions running on this remote terminal."""

    def __init__(
        self,
        pool: FacePool,
        recorder: SerialRecorder,
        settings: SessionSettings,
        device_id: str,
        max_sessions: int,
        idle_s: float,
    ) -> None:
        self.pool, self.recorder, self.settings = pool, recorder, settings
        self.device_id, self.max_sessions, self.idle_s = device_id, max_sessions, idle_s
        self._lock = threading.Lock()
        self._by_token: dict[str, PhoneSession] = {}
        self.clock = SystemClock()

    def _sweep(self) -> None:
        now = time.monotonic()
        for token, s in list(self._by_token.items()):
            if s.ended_at is not None and now - s.ended_at > _KEEP_ENDED_S:
                del self._by_token[token]

    def running(self) -> int:
        """Sessions not yet ended."""
        with self._lock:
            return sum(not s.ended for s in self._by_token.values())

    def start(self, retiree_id: str, template: np.ndarray, language: str) -> PhoneSession:
        """Start certifying ``retiree_id`` against ``template``; ``BusyError`` when full.

        A retiree has at most one session: a new one ends the one before.
        """
        with self._lock:
            self._sweep()
            for s in self._by_token.values():
                if s.retiree_id == retiree_id and not s.ended:
                    s.end()
            if sum(not s.ended for s in self._by_token.values()) >= self.max_sessions:
                raise BusyError("every phone session place is taken")
            camera = UploadCamera(self.idle_s)
            display = PhoneDisplay()
            ports = Ports(
                cards=NoCards(),
                camera=camera,
                faces=PooledFaces(self.pool, time.monotonic),
                references=GivenReference(template),
                recorder=self.recorder,
                voice=SilentVoice(),
                display=display,
                clock=self.clock,
            )
            core = Session(ports, self.settings, self.device_id)
            core.set_language(language)
            phone = PhoneSession(retiree_id, core, camera, display)
            self._by_token[phone.token] = phone
        phone.start()
        log.info("phone session started for %s", mask(retiree_id))
        return phone

    def get(self, token: str | None) -> PhoneSession | None:
        """The session a phone's cookie names (``None``: none, or swept)."""
        if not token:
            return None
        with self._lock:
            return self._by_token.get(token)

    def close(self) -> None:
        """End every session and wait for their threads."""
        with self._lock:
            phones = list(self._by_token.values())
        for s in phones:
            s.end()
        for s in phones:
            s.join(5)
