"""The MQTT consumer: shared subscription in, batched DB transactions, signed acks out.

Results arrive over central's one broker connection (``central.certification.link``:
MQTT 5, mutual TLS, a persistent session, QoS 1 with manual acks): a result's PUBACK goes
to the broker only after the transaction that applied it has committed, so a crash at
any point makes the broker redeliver, and ``result_id`` makes that harmless. After each
commit central publishes a signed ``Ack`` to every device concerned. One stop event ends
the loop: the batch in hand is finished, then the connection is closed cleanly.
"""

import datetime as dt
import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from central.certification.ingest import Inbound, Ingestor, Outcome
from central.certification.link import Link, Route
from central.certification.settings import CentralMqtt, IngestSettings
from central.store.db import StoreBusyError, StoreError
from common import sdnotify
from protocol import messages, signing, topics
from protocol.limits import MAX_ACKS_PER_MESSAGE

log = logging.getLogger(__name__)

_POLL_S = 0.25
_RETRY_MAX_S = 5.0
_LULL_S = 0.005


@dataclass(frozen=True)
class _Received:
    generation: int
    mid: int
    inbound: Inbound


class Consumer:
    """Consumes results from the broker and applies them through an ``Ingestor``.

    It owns the process's ``link`` (connected by ``run``); other services add their
    routes to it before ``run``.
    """

    def __init__(
        self,
        settings: CentralMqtt,
        ingest: IngestSettings,
        ingestor: Ingestor,
        signer: signing.Signer,
        stop: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.batching = ingest
        self.ingestor = ingestor
        self.signer = signer
        self.stop = stop or threading.Event()
        self.ready = threading.Event()
        self.counts: Counter[str] = Counter()
        self._inbox: queue.Queue[_Received] = queue.Queue()
        self.link = Link(settings, min(65_535, max(100, 2 * ingest.batch_size)))
        self.link.add(
            Route(
                subscription=topics.shared_results(settings.share_group, settings.root),
                topics=topics.all_devices("result", settings.root),
                qos=1,
                on_message=self._on_message,
                on_subscribed=self._on_subscribed,
            )
        )

    def backlog(self) -> tuple[int, float]:
        """Results received and not yet applied, and how many seconds the oldest has waited."""
        with self._inbox.mutex:
            depth = len(self._inbox.queue)
            oldest = self._inbox.queue[0].inbound.received_at if depth else None
        lag = 0.0 if oldest is None else (dt.datetime.now(dt.UTC) - oldest).total_seconds()
        return depth, max(lag, 0.0)

    # -- link callbacks (network thread) --------------------------------------------------

    def _on_subscribed(self, code: ReasonCode) -> None:
        if code.is_failure:
            log.error("subscription refused: %s", code)
            return
        log.info("subscribed to results (%s)", self.settings.share_group)
        if not self.ready.is_set():
            self.ready.set()
            sdnotify.notify("READY=1", "STATUS=consuming results")

    def _on_message(self, message: mqtt.MQTTMessage) -> None:
        received = Inbound(message.topic, bytes(message.payload), dt.datetime.now(dt.UTC))
        self._inbox.put(_Received(self.link.generation, message.mid, received))

    # -- main loop ------------------------------------------------------------------------

    def run(self) -> None:
        """Connect, consume until ``stop`` is set, then disconnect cleanly."""
        self.link.start()
        watchdog = sdnotify.watchdog_interval()
        last_ping = 0.0
        try:
            while not self.stop.is_set():
                if watchdog and time.monotonic() - last_ping >= watchdog:
                    sdnotify.notify("WATCHDOG=1")
                    last_ping = time.monotonic()
                batch = self._collect()
                if batch and not self._process(batch):
                    break
        finally:
            sdnotify.notify("STOPPING=1")
            log.info("stopping: %s", dict(self.counts))
            self.link.stop()

    def _collect(self) -> list[_Received]:
        """Up to ``batch_size`` messages, for at most ``max_wait_ms`` after the first."""
        try:
            batch = [self._inbox.get(timeout=_POLL_S)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.batching.max_wait_ms / 1000
        while len(batch) < self.batching.batch_size:
            # A lull ends the batch early: the broker may be holding messages back until
            # it gets PUBACKs (its in-flight window), which we only send after the commit.
            wait = min(deadline - time.monotonic(), _LULL_S)
            try:
                batch.append(
                    self._inbox.get(timeout=wait) if wait > 0 else self._inbox.get_nowait()
                )
            except queue.Empty:
                break
        return batch

    def _process(self, batch: list[_Received]) -> bool:
        """Apply, ack to devices, PUBACK to the broker; False if stopped before the DB came back."""
        delay = 0.1
        while True:
            try:
                outcomes = self.ingestor.apply_batch([r.inbound for r in batch])
                break
            except StoreError as exc:
                level = logging.WARNING if isinstance(exc, StoreBusyError) else logging.ERROR
                log.log(
                    level, "batch of %d not applied, retrying in %.1fs: %s", len(batch), delay, exc
                )
                if self.stop.wait(delay):
                    return False  # not PUBACKed: the broker redelivers them
                delay = min(delay * 2, _RETRY_MAX_S)
        self.counts.update(o.status.value for o in outcomes)  # committed: counted before
        self.counts["batches"] += 1  # a terminal can see its ack
        self._send_acks(outcomes)
        current = self.link.generation
        for received in batch:
            if received.generation == current:  # older ones the broker will redeliver
                self.link.ack(received.mid, 1)
        return True

    def _send_acks(self, outcomes: list[Outcome]) -> None:
        """One signed ``AckBatch`` per device (chunked), not one signature per result."""
        per_device: dict[str, list[messages.Ack]] = {}
        for outcome in outcomes:
            if outcome.ack is not None:
                per_device.setdefault(outcome.ack.device_id, []).append(outcome.ack)
        for device_id, acks in per_device.items():
            try:
                topic = topics.device_topic(device_id, "ack", self.settings.root)
                for start in range(0, len(acks), MAX_ACKS_PER_MESSAGE):
                    chunk = tuple(acks[start : start + MAX_ACKS_PER_MESSAGE])
                    batch = messages.AckBatch(device_id=device_id, acks=chunk)
                    payload = self.signer.sign(messages.encode(batch)).encode()
                    self.link.publish(topic, payload, qos=1)
            except Exception:  # the terminal re-sends and gets a 'duplicate' ack later
                log.exception("acks for %s not sent", device_id)
