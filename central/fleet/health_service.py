"""The fleet-health thread of ``lifecert-central run``: flush state, check alerts, serve metrics."""

import datetime as dt
import logging
import threading
import time
from typing import Any, Self

import sqlalchemy as sa

from central.fleet.alerts import Alerts
from central.fleet.health import FleetHealth, load_states

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 5.0
"""Seconds between writes of the fleet's state (one transaction each, the latest per device)."""


class HealthService:
    """Writes the fleet's state every ``FLUSH_INTERVAL_S`` and checks alerts every
    ``[alerts] interval_s`` (writing first), on its own thread; a context manager: leaving
    it stops the thread and the metrics server."""

    def __init__(
        self, health: FleetHealth, alerts: Alerts, stop: threading.Event, metrics: Any = None
    ) -> None:
        self.health = health
        self.alerts = alerts
        self.stop = stop
        self.metrics = metrics
        self.checks = 0
        self._thread = threading.Thread(target=self._run, name="fleet-health", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def _run(self) -> None:
        interval = self.alerts.settings.interval_s
        next_flush = time.monotonic() + FLUSH_INTERVAL_S
        next_check = time.monotonic() + min(interval, 5.0)  # let retained statuses arrive
        while not self.stop.wait(max(min(next_flush, next_check) - time.monotonic(), 0.05)):
            now = time.monotonic()
            if now >= next_flush or now >= next_check:
                next_flush = now + FLUSH_INTERVAL_S
                self.health.flush()  # before a check, so that it sees the latest state
            if now >= next_check:
                next_check = now + interval
                try:
                    self.alerts.check(load_states(self.health.engine), dt.datetime.now(dt.UTC))
                    self.checks += 1
                except sa.exc.SQLAlchemyError as exc:
                    log.error("alert check skipped: %s", exc)
        self.health.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        if self.metrics is not None:
            self.metrics.shutdown()
