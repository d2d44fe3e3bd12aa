"""Prometheus metrics for ``lifecert-central run`` (``[metrics] port``), read at scrape time.

- ``lifecert_results_total{outcome}``: results ingested by this process (rate = ingest rate)
- ``lifecert_ingest_queue_messages`` / ``lifecert_ingest_queue_lag_seconds``: results
  received and not yet applied, and how long the oldest has waited
- ``lifecert_quarantine_total{reason}``: quarantined messages in the database, by reason
- ``lifecert_fleet_devices{state}``: terminals by state (online, offline, silent, ...)
- ``lifecert_fleet_alerts_open{rule}``: open alerts by rule
- ``lifecert_fleet_messages_total{kind}`` / ``lifecert_fleet_dropped_total{reason}``:
  status and telemetry kept and dropped by this process
"""

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from central.fleet.health import FleetHealth, load_states
from central.fleet.health_schema import fleet_alerts
from central.fleet.health_settings import MetricsSettings
from central.store import schema
from common.errors import ConfigError

log = logging.getLogger(__name__)

Backlog = Callable[[], tuple[int, float]]


class CentralCollector(Collector):
    """Builds every metric from central's live counters and its database, per scrape."""

    def __init__(
        self,
        engine: Engine,
        results: Counter[str],
        backlog: Backlog,
        health: FleetHealth,
        silent_after_s: float,
    ) -> None:
        self.engine = engine
        self.results = results
        self.backlog = backlog
        self.health = health
        self.silent_after_s = silent_after_s

    def collect(self) -> Iterator[Metric]:
        """The metrics (a database error leaves out the database's, never fails the scrape)."""
        results = CounterMetricFamily(
            "lifecert_results", "Results ingested by this process", labels=["outcome"]
        )
        for outcome, n in sorted(self.results.items()):
            if outcome != "batches":
                results.add_metric([outcome], n)
        yield results
        depth, lag = self.backlog()
        yield GaugeMetricFamily(
            "lifecert_ingest_queue_messages", "Results received, not yet applied", value=depth
        )
        yield GaugeMetricFamily(
            "lifecert_ingest_queue_lag_seconds", "Age of the oldest unapplied result", value=lag
        )
        kept = CounterMetricFamily(
            "lifecert_fleet_messages", "Status and telemetry messages kept", labels=["kind"]
        )
        for kind, n in sorted(self.health.received.items()):
            kept.add_metric([kind], n)
        yield kept
        dropped = CounterMetricFamily(
            "lifecert_fleet_dropped",
            "Status and telemetry messages dropped (bad, oversized, foreign)",
            labels=["reason"],
        )
        for reason, n in sorted(self.health.dropped.items()):
            dropped.add_metric([reason], n)
        yield dropped
        try:
            yield from self._from_database()
        except sa.exc.SQLAlchemyError as exc:
            log.error("metrics: database unavailable: %s", exc)

    def _from_database(self) -> Iterator[Metric]:
        q = schema.quarantine
        t = fleet_alerts
        with self.engine.connect() as conn:
            quarantined = conn.execute(
                sa.select(q.c.reason, sa.func.count()).group_by(q.c.reason)
            ).all()
            alerts = conn.execute(
                sa.select(t.c.rule, sa.func.count())
                .where(t.c.cleared_at.is_(None))
                .group_by(t.c.rule)
            ).all()
        family = CounterMetricFamily(
            "lifecert_quarantine", "Messages quarantined, by reason", labels=["reason"]
        )
        for reason, n in quarantined:
            family.add_metric([reason], n)
        yield family
        now = dt.datetime.now(dt.UTC)
        states = Counter(s.state(now, self.silent_after_s) for s in load_states(self.engine))
        devices = GaugeMetricFamily(
            "lifecert_fleet_devices", "Terminals by state", labels=["state"]
        )
        for state in ("online", "offline", "stopped", "silent"):
            devices.add_metric([state], states.get(state, 0))
        yield devices
        open_alerts = GaugeMetricFamily(
            "lifecert_fleet_alerts_open", "Open fleet alerts, by rule", labels=["rule"]
        )
        for rule, n in alerts:
            open_alerts.add_metric([rule], n)
        yield open_alerts


def serve(settings: MetricsSettings, collector: CentralCollector) -> Any:
    """Serve ``/metrics`` on ``[metrics] bind:port`` in a thread; the server (``shutdown()``)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    try:
        server, _thread = start_http_server(settings.port, settings.bind, registry=registry)
    except OSError as exc:
        raise ConfigError(
            f"metrics.port: cannot listen on {settings.bind}:{settings.port}: {exc.strerror}"
        ) from None
    log.info("metrics on http://%s:%d/metrics", settings.bind, settings.port)
    return server
