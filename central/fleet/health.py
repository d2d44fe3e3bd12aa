"""Each terminal's state, kept from its retained status and its telemetry.

Two ``Route``s on central's one broker link: ``<root>/dev/+/status`` (QoS 1, retained
``online`` / ``offline`` as the last will / ``stopped``) and ``<root>/dev/+/telemetry``
(QoS 0, ``protocol.messages.Telemetry``). The device id is the topic's, which the broker's
ACL lets only that device's login write; a telemetry report naming another device, an
unknown device, an oversized or malformed payload is counted in ``dropped`` by reason and
never reaches the database. Messages are only parsed on paho's thread; the latest state
per device is written in one transaction per ``flush`` (``HealthService`` runs it every
5 s and before each alert check), so 10,000 terminals cost one upsert batch every 5 s.
"""

import datetime as dt
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import sqlalchemy as sa
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from central.certification.link import Link, Route
from central.fleet.health_schema import fleet_devices
from protocol import messages, topics
from protocol.errors import MessageError
from protocol.limits import MAX_STATUS_BYTES, MAX_TELEMETRY_BYTES
from protocol.messages import Telemetry

log = logging.getLogger(__name__)

STATUSES = frozenset({topics.STATUS_ONLINE, topics.STATUS_OFFLINE, topics.STATUS_STOPPED})
ENROLLED_TTL_S = 60.0
"""How long a device found enrolled is taken as enrolled without looking again."""
SILENT = "silent"
UNKNOWN = "unknown"

Clock = Callable[[], dt.datetime]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class DeviceState:
    """One terminal as central last saw it."""

    device_id: str
    status: str | None
    status_at: dt.datetime | None
    last_seen: dt.datetime | None
    clock_skew_s: float | None
    telemetry: dict[str, Any] | None

    def state(self, now: dt.datetime, silent_after_s: float) -> str:
        """``online``, ``offline``, ``stopped``, ``silent`` (online but no telemetry for
        ``silent_after_s``: unplugged, and the broker has not noticed yet) or ``unknown``."""
        if self.status is None:
            return UNKNOWN
        if self.status == topics.STATUS_ONLINE:
            heard = max(t for t in (self.status_at, self.last_seen) if t is not None)
            if (now - heard).total_seconds() > silent_after_s:
                return SILENT
        return self.status

    def since(self) -> dt.datetime | None:
        """When the terminal was last heard from or changed status."""
        times = [t for t in (self.status_at, self.last_seen) if t is not None]
        return max(times) if times else None


def load_states(engine: Engine) -> list[DeviceState]:
    """Every terminal in ``fleet_devices``, by device id."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(fleet_devices).order_by(fleet_devices.c.device_id))
        return [DeviceState(**r._mapping) for r in rows]


class FleetHealth:
    """Parses status and telemetry from the link and writes the latest per device."""

    def __init__(
        self,
        engine: Engine,
        is_enrolled: Callable[[str], bool],
        root: str = topics.ROOT,
        clock: Clock = _now,
    ) -> None:
        self.engine = engine
        self.root = root
        self._is_enrolled = is_enrolled
        self._clock = clock
        self._lock = threading.Lock()
        self._statuses: dict[str, tuple[str, dt.datetime]] = {}
        self._reports: dict[str, tuple[Telemetry, dt.datetime]] = {}
        self._enrolled: dict[str, float] = {}  # device id -> when last found enrolled
        self.received: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()

    def attach(self, link: Link) -> None:
        """Add the status and telemetry routes to ``link`` (plain subscriptions: every
        central process keeps every device's state; writing it twice is harmless)."""

        def on_status(message: mqtt.MQTTMessage) -> None:
            self.on_status(message)
            link.ack(message.mid, message.qos)  # the link acks manually; a status is QoS 1

        kinds: tuple[tuple[topics.Kind, int, Callable[[mqtt.MQTTMessage], None]], ...] = (
            ("status", 1, on_status),
            ("telemetry", 0, self.on_telemetry),
        )
        for kind, qos, handler in kinds:
            link.add(
                Route(
                    subscription=topics.all_devices(kind, self.root),
                    topics=topics.all_devices(kind, self.root),
                    qos=qos,
                    on_message=handler,
                    on_subscribed=self._on_subscribed,
                    durable=False,
                )
            )

    def _on_subscribed(self, code: ReasonCode) -> None:
        if code.is_failure:
            log.error("fleet health subscription refused: %s", code)

    def _device(self, topic: str, size: int, limit: int) -> str | None:
        try:
            device_id, _ = topics.parse(topic, self.root)
        except ValueError:
            self._drop("bad_topic", topic)
            return None
        if size > limit:
            self._drop("oversized", topic)
            return None
        now = time.monotonic()
        if self._enrolled.get(device_id, -ENROLLED_TTL_S) + ENROLLED_TTL_S < now:
            if not self._is_enrolled(device_id):
                self._drop("unknown_device", topic)
                return None
            self._enrolled[device_id] = now
        return device_id

    def _drop(self, reason: str, topic: str) -> None:
        self.dropped[reason] += 1
        if self.dropped[reason] in (1, 10, 100) or self.dropped[reason] % 1000 == 0:
            log.warning("fleet health: dropped a message on %r (%s, %d so far)",
                        topic[:200], reason, self.dropped[reason])  # fmt: skip

    def on_status(self, message: mqtt.MQTTMessage) -> None:
        """A retained status: ``online``, ``offline`` (last will) or ``stopped``."""
        payload = message.payload
        device_id = self._device(message.topic, len(payload), MAX_STATUS_BYTES)
        if device_id is None:
            return
        status = bytes(payload).decode("ascii", "replace")
        if status not in STATUSES:
            self._drop("bad_status", message.topic)
            return
        self.received["status"] += 1
        with self._lock:
            self._statuses[device_id] = (status, self._clock())

    def on_telemetry(self, message: mqtt.MQTTMessage) -> None:
        """A health report; kept only if valid and naming the topic's device."""
        payload = message.payload
        device_id = self._device(message.topic, len(payload), MAX_TELEMETRY_BYTES)
        if device_id is None:
            return
        try:
            report = messages.decode(Telemetry, bytes(payload))
        except MessageError:
            self._drop("invalid", message.topic)
            return
        if report.device_id != device_id:
            self._drop("foreign_device", message.topic)
            return
        self.received["telemetry"] += 1
        with self._lock:
            self._reports[device_id] = (report, self._clock())

    def flush(self) -> int:
        """Write what arrived since the last flush in one transaction; rows written."""
        with self._lock:
            statuses, self._statuses = self._statuses, {}
            reports, self._reports = self._reports, {}
        if not statuses and not reports:
            return 0
        try:
            with self.engine.begin() as conn:
                if statuses:
                    conn.execute(
                        _upsert_status(self.engine),
                        [
                            {"device_id": d, "status": s, "status_at": at}
                            for d, (s, at) in statuses.items()
                        ],
                    )
                if reports:
                    conn.execute(
                        _upsert_report(self.engine),
                        [
                            {
                                "device_id": d,
                                "last_seen": at,
                                "clock_skew_s": round((r.device_time - at).total_seconds(), 3),
                                "telemetry": r.model_dump(mode="json", exclude={"device_id"}),
                            }
                            for d, (r, at) in reports.items()
                        ],
                    )
        except sa.exc.SQLAlchemyError as exc:
            log.error("fleet health not written, keeping it for the next flush: %s", exc)
            with self._lock:  # newer arrivals win over what is put back
                self._statuses = statuses | self._statuses
                self._reports = reports | self._reports
            return 0
        return len(statuses) + len(reports)


def _insert(engine: Engine) -> Any:
    """An INSERT with ``on_conflict_do_update`` (the same API on both engines)."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(fleet_devices)
    return sqlite.insert(fleet_devices)


def _upsert_status(engine: Engine) -> Any:
    stmt = _insert(engine)
    new = stmt.excluded
    t = fleet_devices.c
    return stmt.on_conflict_do_update(
        index_elements=[t.device_id],
        set_={
            "status": new.status,
            # a retained status re-delivered at every connect keeps the time it first came
            "status_at": sa.case((t.status == new.status, t.status_at), else_=new.status_at),
        },
    )


def _upsert_report(engine: Engine) -> Any:
    stmt = _insert(engine)
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[fleet_devices.c.device_id],
        set_={
            "last_seen": new.last_seen,
            "clock_skew_s": new.clock_skew_s,
            "telemetry": new.telemetry,
        },
    )
