"""Face pipelines shared by the phone sessions of one remote terminal.

A TFLite interpreter serves one call at a time, so the remote terminal loads ``workers``
verified pipelines and each session's ``Faces`` port borrows one per call. A session's
probe observes its frame again on the pipeline it borrowed, so a chip can never come from
another session's frame. Every observation records how long its frame waited since it
arrived (the latency the benchmark and the health log report).
"""

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from edge.adapters.devices import PipelineFaces
from edge.session.model import Comparison, Observation, Probe
from hal.camera import Frame

_WINDOW = 2000  # latencies kept for the percentiles
Now = Callable[[], float]


class Latencies:
    """Frame latencies (arrival to observation done), the newest ``_WINDOW``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: list[float] = []

    def add(self, seconds: float) -> None:
        with self._lock:
            self._values.append(seconds)
            if len(self._values) > 2 * _WINDOW:
                del self._values[:-_WINDOW]

    def take(self) -> list[float]:
        """The latencies so far (and forget them)."""
        with self._lock:
            values, self._values = self._values, []
        return values


class FacePool:
    """``workers`` ``PipelineFaces``, lent one call at a time."""

    def __init__(self, faces: list[PipelineFaces]) -> None:
        if not faces:
            raise ValueError("a face pool needs at least one pipeline")
        self._idle: queue.Queue[PipelineFaces] = queue.Queue()
        for f in faces:
            self._idle.put(f)
        self.model = faces[0].model
        self.template_model = faces[0].template_model
        self.latencies = Latencies()

    @contextmanager
    def borrow(self) -> Iterator[PipelineFaces]:
        """A pipeline for one call (waits for a free one)."""
        faces = self._idle.get()
        try:
            yield faces
        finally:
            self._idle.put(faces)


class PooledFaces:
    """The session's ``Faces`` port for one phone session, over a :class:`FacePool`."""

    def __init__(self, pool: FacePool, now: Now) -> None:
        self.pool, self._now = pool, now
        self.model = pool.model
        self.template_model = pool.template_model

    def observe(self, frame: Frame) -> Observation:
        with self.pool.borrow() as faces:
            observation = faces.observe(frame)
        self.pool.latencies.add(self._now() - frame.timestamp)
        return observation

    def probe(self, frame: Frame) -> Probe | None:
        with self.pool.borrow() as faces:
            faces.observe(frame)  # this pipeline's last chip is now this frame's
            return faces.probe(frame)

    def keep(self, probe: Probe) -> np.ndarray:
        with self.pool.borrow() as faces:
            return faces.keep(probe)

    def photo_template(self, rgb: np.ndarray) -> np.ndarray | None:
        return None  # a phone session has no card photo: the first certification is in person

    def compare(self, probe: np.ndarray, reference: np.ndarray, mode: str) -> Comparison:
        with self.pool.borrow() as faces:
            return faces.compare(probe, reference, mode)
