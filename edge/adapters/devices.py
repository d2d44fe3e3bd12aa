"""Real adapters for the session's ports: card readers, face pipeline, vein matcher, voice,
clock, display.

Everything here wraps a real part (``models.pipeline.FacePipeline``, a HAL
``VeinSensor`` with ``models.vein``, a HAL ``Speaker``); the session core
never sees images beyond handing frames through.
"""

import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable

import numpy as np

from edge.session.model import Comparison, Measures, Observation, Probe, Screen
from hal.camera import Frame
from hal.card import CardReader
from hal.card.identity import Identity
from hal.errors import HalError
from hal.speaker import Speaker
from hal.vein import Prompt, VeinSensor
from models import vein
from models.bundle import Manifest
from models.errors import BundleError
from models.face import liveness
from models.face.quality import measure
from models.pipeline import FacePipeline, as_image

log = logging.getLogger(__name__)


def pad_threshold(manifest: Manifest) -> float | None:
    """The signed PAD threshold of the bundle's PAD model (``None`` without one)."""
    if "pad" not in manifest.models:
        return None
    t = manifest.score_threshold("pad")
    model = manifest.models["pad"].identity
    if t.scorer != model:
        raise BundleError(
            f"bundle {manifest.name} {manifest.version}: its pad threshold is for {t.scorer}, "
            f"not its PAD model {model}; add the PAD model again (lifecert-models add-pad)"
        )
    return t.score


def vein_threshold(manifest: Manifest) -> float:
    """The signed vein threshold, calibrated for this terminal's vein matcher."""
    t = manifest.score_threshold("vein")
    if t.scorer != vein.scorer():
        raise BundleError(
            f"bundle {manifest.name} {manifest.version}: its vein threshold is for {t.scorer!r}, "
            f"this terminal matches with {vein.scorer()!r}; install a bundle built for it"
        )
    return t.score


class PipelineFaces:
    """The ``Faces`` port over a verified ``FacePipeline``.

    ``observe`` runs detection and landmarks (plus the chip for quality) and
    keeps the chip of the last frame, so ``probe`` of that frame only embeds.
    """

    def __init__(self, pipeline: FacePipeline) -> None:
        self.pipeline = pipeline
        m = pipeline.manifest
        embedder = m.models["embedder"]
        self.model = f"{m.name} {m.version} {embedder.file}"
        self.template_model = embedder.identity
        self.pad_threshold = pad_threshold(m)
        self._last: tuple[float, np.ndarray, object] | None = None

    def observe(self, frame: Frame) -> Observation:
        img = as_image(frame.rgb)
        p = self.pipeline
        detections = p.detector.detect(img)
        for det in sorted(detections, key=lambda d: -d.width):
            marks = p.landmarker.landmarks(img, det)
            if marks is None:
                continue
            chip = p.align(img, marks)
            q = measure(chip, marks, det.width, len(detections))
            pose = liveness.pose(marks)
            self._last = (frame.timestamp, chip, det)
            return Observation(
                frame.timestamp,
                len(detections),
                Measures(
                    liveness.eye_openness(marks),
                    liveness.mouth_openness(marks),
                    pose.yaw,
                    pose.pitch,
                ),
                face_width=q.face_width,
                brightness=q.brightness,
                sharpness=q.sharpness,
            )
        self._last = None
        return Observation(frame.timestamp, len(detections))

    def probe(self, frame: Frame) -> Probe | None:
        if self._last is None or self._last[0] != frame.timestamp:
            self.observe(frame)
        if self._last is None:
            return None
        _, chip, det = self._last
        pad = self.pipeline.pad
        score = float(pad.live_score(as_image(frame.rgb), det)) if pad is not None else None
        return Probe(self.pipeline.embed(chip), score, chip, self.pad_threshold)

    def keep(self, probe: Probe) -> np.ndarray:
        return probe.template if probe.chip is None else self.pipeline.reference(probe.chip)

    def photo_template(self, rgb: np.ndarray) -> np.ndarray | None:
        face = self.pipeline.card_photo(rgb)
        return None if face is None else face.template

    def compare(self, probe: np.ndarray, reference: np.ndarray, mode: str) -> Comparison:
        match = self.pipeline.compare(probe, reference, mode)  # type: ignore[arg-type]
        return Comparison(match.distance, match.threshold, match.matched)


class SensorVeins:
    """The ``Veins`` port: a HAL vein sensor and the maximum-curvature / Miura matcher."""

    model = "maximum-curvature+miura (models.vein)"

    def __init__(self, sensor: VeinSensor, threshold: float) -> None:
        self.sensor, self.threshold = sensor, threshold

    def capture(self, timeout: float, on_prompt: Callable[[Prompt], None]) -> bytes:
        return vein.pack(vein.extract(self.sensor.capture(timeout, on_prompt)))

    def compare(self, reference: bytes, probe: bytes) -> Comparison:
        score = vein.match(vein.unpack(reference), vein.unpack(probe))
        return Comparison(score, self.threshold, score >= self.threshold)


class CardSlots:
    """Several readers (resident-ID, social-security) seen as one: the first card found."""

    def __init__(self, readers: list[CardReader]) -> None:
        self.readers = readers

    def poll(self) -> Identity | None:
        for reader in self.readers:
            card = reader.poll()
            if card is not None:
                return card
        return None


class QueuedVoice:
    """Speaks on a worker thread so frames keep flowing; a newer prompt replaces waiting ones."""

    def __init__(self, speaker: Speaker) -> None:
        self.speaker = speaker
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="voice", daemon=True)
        self._thread.start()

    def say(self, text: str, lang: str = "zh") -> None:
        while True:  # only the newest prompt matters
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put((text, lang))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self.speaker.say(*item)
            except (HalError, ValueError) as exc:
                log.warning("voice prompt failed: %s", exc)

    def close(self) -> None:
        """Stop the worker after the prompt being spoken."""
        self._queue.put(None)
        self._thread.join(timeout=35)


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.monotonic()

    def today(self) -> dt.date:
        return dt.date.today()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class ScreenLog:
    """A ``Display`` that only logs steps (command-line sessions without a kiosk)."""

    def show(self, screen: Screen) -> None:
        log.info("screen %s: %s", screen.step, screen.prompt)

    def preview(self, frame: Frame, observation: Observation) -> None:
        """No preview without a screen."""
