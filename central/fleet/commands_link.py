"""The fleet's side of central's broker connection: desired configs and commands out,
reports and command acks in.

Two durable QoS 1 routes on the process's ``Link``: ``+/reported`` (retained, what each
terminal runs) and ``+/cmdack`` (answers to commands). Both are signed by the device:
a message is kept only if its signature verifies with the certificate of the device whose
topic it came on, that certificate is trusted, and the payload names that device; anything
else (garbage, another device's signature, oversized) is logged and acked away, never
stops the service. One worker thread does the work off paho's thread, PUBACKs each
message after it is stored, and every ``publish_interval_s`` publishes the desired configs
(retained) and commands (QoS 1) the CLI queued in the database.
"""

import datetime as dt
import logging
import queue
import threading
from typing import Final, Self

import paho.mqtt.client as mqtt
import sqlalchemy as sa
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy.engine import Engine

from central.certification.devices import DeviceTrust
from central.certification.link import Link, Route
from central.fleet import commands, desired, rollouts
from central.fleet.rollouts_server import base_url
from central.fleet.rollouts_settings import RolloutSettings
from protocol import fleet, messages, signing, topics
from protocol.errors import MessageError, SignatureError

log = logging.getLogger(__name__)

_QUEUE_MAX: Final = 10_000
_LIMITS: Final = {"reported": fleet.MAX_REPORTED_BYTES, "cmdack": fleet.MAX_ACK_BYTES}


def members(trust: DeviceTrust) -> list[desired.Member]:
    """The enrolled devices with their sites."""
    return [desired.Member(d.device_id, d.site) for d in trust.devices()]


class FleetLink:
    """Publishes desired configs and commands, takes in reports and acks; a context manager."""

    def __init__(
        self,
        link: Link,
        engine: Engine,
        trust: DeviceTrust,
        signer: signing.Signer,
        settings: RolloutSettings,
    ) -> None:
        self.link, self.engine, self.trust = link, engine, trust
        self.signer, self.settings = signer, settings
        self.root = link.settings.root
        self._halt = threading.Event()
        self.ready = threading.Event()
        self._inbox: queue.Queue[tuple[str, bytes, int, int]] = queue.Queue(_QUEUE_MAX)
        self._known: frozenset[desired.Member] = frozenset()
        self._republished = False  # every config again once per process (a broker that lost
        # its retained messages gets them back; terminals ignore a version they run)
        for kind in ("reported", "cmdack"):
            link.add(
                Route(
                    subscription=topics.all_devices(kind, self.root),
                    topics=topics.all_devices(kind, self.root),
                    qos=1,
                    on_message=self._on_message,
                    on_subscribed=self._on_subscribed,
                )
            )
        self._worker = threading.Thread(target=self._work, name="fleet", daemon=True)

    def _on_subscribed(self, code: ReasonCode) -> None:
        if code.is_failure:
            log.error("fleet subscription refused: %s", code)
        else:
            self.ready.set()

    def _on_message(self, message: mqtt.MQTTMessage) -> None:
        item = (message.topic, bytes(message.payload), message.mid, message.qos)
        try:
            self._inbox.put_nowait(item)
        except queue.Full:
            log.warning("fleet queue full: leaving %s unacked for redelivery", message.topic)

    def _work(self) -> None:
        next_tick = 0.0
        while not self._halt.is_set():
            try:
                topic, payload, mid, qos = self._inbox.get(timeout=0.1)
            except queue.Empty:
                pass
            else:
                self._take(topic, payload)
                if qos:
                    self.link.ack(mid, qos)
            now = dt.datetime.now(dt.UTC).timestamp()
            if now >= next_tick:
                next_tick = now + self.settings.publish_interval_s
                try:
                    self.tick()
                except sa.exc.SQLAlchemyError as exc:
                    log.error("fleet publishing postponed: %s", exc)

    def _take(self, topic: str, payload: bytes) -> None:
        try:
            device_id, kind = topics.parse(topic, self.root)
            if len(payload) > _LIMITS[kind]:
                raise MessageError(f"{len(payload)} bytes, more than {_LIMITS[kind]}")
            body = commands.verify_device_message(self.trust, payload, device_id)
            now = dt.datetime.now(dt.UTC)
            if kind == "reported":
                report = messages.decode(fleet.Reported, body)
                if report.device_id != device_id:
                    raise MessageError(f"report names {report.device_id}")
                desired.record_reported(self.engine, report, now)
            else:
                row = commands.record_ack(self.engine, commands.decode_ack(body, device_id), now)
                if row is not None and row["rollout_id"]:
                    rollouts.on_answer(self.engine, row, now)
        except (ValueError, MessageError, SignatureError) as exc:
            log.warning("refused a message on %s: %s", topic, exc)
        except sa.exc.SQLAlchemyError as exc:
            log.error("could not store a message on %s: %s", topic, exc)

    def tick(self) -> None:
        """Publish what waits: new desired configs (retained), queued commands, expiries."""
        now = dt.datetime.now(dt.UTC)
        known = frozenset(members(self.trust))
        if known != self._known:
            desired.refresh(self.engine, sorted(known, key=lambda m: m.device_id), self.signer, now)
            self._known = known
        if not self.link.connected:
            return
        if not self._republished:
            self._publish_configs(desired.unpublished(self.engine, everything=True))
            self._republished = True
        if fresh := desired.unpublished(self.engine):
            self._publish_configs(fresh)
            desired.mark_published(self.engine, fresh, now)
        sent = []
        for command_id, device_id, token in commands.queued(self.engine, now):
            topic = topics.device_topic(device_id, "cmd", self.root)
            self.link.publish(topic, token.encode("ascii"), qos=1)
            sent.append(command_id)
        if sent:
            commands.mark_sent(self.engine, sent)
        rollouts.expire_offers(self.engine, now)
        update_ttl = dt.timedelta(seconds=self.settings.update_ttl_s)
        for rollout_id in rollouts.revert_late(self.engine, self.signer, update_ttl, now):
            log.info("rollout %s: a terminal that took it after the revert is reverted", rollout_id)
        if self.settings.bundle_port or self.settings.bundle_url:
            for rollout_id in rollouts.auto_advance(
                self.engine, self.signer, base_url(self.settings), update_ttl, now
            ):
                log.info("rollout %s: next wave started by itself", rollout_id)

    def _publish_configs(self, configs: list[tuple[str, str]]) -> None:
        for device_id, token in configs:
            topic = topics.device_topic(device_id, "config", self.root)
            self.link.publish(topic, token.encode("ascii"), qos=1, retain=True)

    def start(self) -> None:
        """Start the worker (the link, started by its owner, brings the messages)."""
        self._worker.start()

    def close(self) -> None:
        """Stop the worker."""
        self._halt.set()
        if self._worker.is_alive():
            self._worker.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
