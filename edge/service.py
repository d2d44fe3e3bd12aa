"""``lifecert-edge run``: deliver the outbox to central until told to stop.

Start order: keys (fail fast on a bad bundle), outbox, MQTT link, then READY —
the terminal works offline, so READY means "the outbox is open and the loop
runs", not "connected". The loop wakes on every ack or connect and at least
every ``outbox.poll_interval_s`` to pick up results other processes stored,
pings the systemd watchdog and publishes telemetry. Stop (SIGTERM/SIGINT set
one event) runs the steps in reverse: STOPPING, ``stopped`` status, close.
"""

import contextlib
import logging
import queue
import threading
import time
from typing import TypeVar

from common import sdnotify
from common.errors import ConfigError, LifecertError
from edge import renewal
from edge.adapters import keys as edge_keys
from edge.adapters.mqtt import MqttLink
from edge.adapters.outbox import Outbox, OutboxError
from edge.bootstrap import open_fleet, open_link, open_outbox
from edge.config import EdgeConfig
from edge.fleet import agent
from edge.publisher import Publisher
from edge.telemetry import Health
from protocol import fleet, messages

log = logging.getLogger(__name__)
T = TypeVar("T")


def _drain(q: "queue.SimpleQueue[T]") -> list[T]:
    items = []
    while True:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            return items


class EdgeService:
    """The terminal's delivery service: outbox → broker → central's acks → outbox."""

    def __init__(self, cfg: EdgeConfig, stop: threading.Event | None = None) -> None:
        self.cfg = cfg
        self.stop_event = stop or threading.Event()
        self._wake = threading.Event()
        self._acks: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._connects: queue.SimpleQueue[bool] = queue.SimpleQueue()
        try:
            if done := renewal.recover(cfg):  # a power cut mid-switch: before the keys load
                log.warning("%s", done)
        except OSError as exc:
            raise ConfigError(
                f"mqtt.tls: cannot finish an interrupted certificate switch: {exc}"
            ) from None
        self._keys = edge_keys.load(cfg)
        self.restart_requested = False
        self.fleet = open_fleet(cfg, self._on_config, self._on_restart)
        self.cfg = self.fleet.config()  # edge.toml with the desired settings applied
        self._health = Health(self.cfg)
        logging.getLogger().setLevel(self.cfg.log_level)
        self.renewer = renewal.Renewer(cfg, self._keys.signer, self._reload_identity)
        agent.ACTIONS[fleet.Action.RENEW_CERTIFICATE] = self._renew_command

    def request_renewal(self) -> None:
        """Renew the certificate now (central's signed ``renew`` command)."""
        self.renewer.request()
        self._wake.set()

    def _renew_command(self, command: fleet.Command) -> tuple[fleet.AckStatus, str]:
        """Central's signed ``renew_certificate`` command (on the fleet agent's thread)."""
        if not self.renewer.writable:
            return fleet.AckStatus.REFUSED, "renewal is off here: the device key cannot be replaced"
        self.request_renewal()
        return fleet.AckStatus.DONE, "renewal started: a new key, its CSR sent over MQTT"

    def _reload_identity(self) -> None:
        """After a renewal's switch: model downloads present the new certificate too."""
        tls = self.fleet.updater.tls
        if tls is not None:
            tls.load_cert_chain(
                str(self.cfg.mqtt.tls.cert_file), str(edge_keys.device_key_path(self.cfg))
            )

    def _on_cert(self, payload: bytes) -> None:
        self.renewer.on_cert(payload)
        self._wake.set()

    def stop(self) -> None:
        """Ask the loop to finish (thread- and signal-safe)."""
        self.stop_event.set()
        self._wake.set()

    def _on_config(self, cfg: EdgeConfig) -> None:
        """A desired config was applied: log level, telemetry and polling change now."""
        self.cfg = cfg
        logging.getLogger().setLevel(cfg.log_level)
        self._wake.set()

    def _on_restart(self) -> None:
        """A ``restart`` command: stop, and exit so that systemd starts the service again."""
        self.restart_requested = True
        self.stop()

    def _on_ack(self, payload: bytes) -> None:
        self._acks.put(payload)
        self._wake.set()

    def _on_connect(self, session_present: bool) -> None:
        self._connects.put(session_present)
        self._wake.set()

    def run(self) -> None:
        """Run until the stop event is set."""
        with open_outbox(self.cfg) as outbox:
            link = open_link(
                self.cfg,
                on_ack=self._on_ack,
                on_connect=self._on_connect,
                on_cert=self._on_cert,
                on_fleet=self.fleet.on_message,
            )
            publisher = Publisher(
                outbox,
                self._keys.central_verifier,
                link.publish_result,
                max_inflight=self.cfg.outbox.max_inflight,
            )
            with link, self.fleet, contextlib.ExitStack() as kiosk:
                link.start()
                self.fleet.start(link)
                if self.cfg.kiosk.enabled:  # the session and its page (issue 6)
                    from edge.kiosk.runner import Kiosk  # uvicorn and models: kiosk only

                    kiosk.enter_context(
                        Kiosk(self.cfg, self.stop_event, link, watch=self.fleet.session_ended)
                    ).start()
                if self.cfg.remote.enabled:  # phone sessions (issue 16)
                    from edge.remote.runner import Remote  # uvicorn and models: remote only

                    kiosk.enter_context(Remote(self.cfg, self.stop_event, link)).start()
                counts = outbox.counts()
                sdnotify.notify("READY=1", f"STATUS=outbox: {counts['pending']} pending")
                log.info(
                    "edge service %s started, outbox %s: %s",
                    self.cfg.device_id,
                    outbox.path,
                    counts,
                )
                self._loop(outbox, link, publisher)
                sdnotify.notify("STOPPING=1")
                log.info("stopping")
        log.info("stopped")

    def _loop(self, outbox: Outbox, link: MqttLink, publisher: Publisher) -> None:
        watchdog = sdnotify.watchdog_interval()
        last_ping = last_telemetry = 0.0
        while not self.stop_event.is_set():
            poll = self.cfg.outbox.poll_interval_s  # desired config may change these
            telemetry = self.cfg.link.telemetry_interval_s
            self._wake.clear()
            try:
                self._step(link, publisher)
            except OutboxError as exc:
                log.error("outbox unavailable, will retry: %s", exc)
            self._renew(link, outbox)
            now = time.monotonic()
            if watchdog and now - last_ping >= watchdog:
                sdnotify.notify("WATCHDOG=1")
                last_ping = now
            if telemetry and link.connected and now - last_telemetry >= telemetry:
                report = self._health.report(outbox, publisher.inflight)
                link.publish_telemetry(messages.encode(report))
                last_telemetry = now
            self._wake.wait(poll)

    def _renew(self, link: MqttLink, outbox: Outbox) -> None:
        """One step of certificate renewal; its failures never stop delivery."""
        try:
            self.renewer.step(link, lambda: outbox.counts()["pending"])
        except (OSError, ValueError, LifecertError) as exc:
            log.error("certificate renewal step failed, will retry: %s", exc)
            self.renewer.back_off()

    def _step(self, link: MqttLink, publisher: Publisher) -> None:
        for session_present in _drain(self._connects):
            publisher.connected(session_present)
        if payloads := _drain(self._acks):
            try:
                publisher.apply_acks(payloads)
            except OutboxError:
                for payload in payloads:
                    self._acks.put(payload)
                raise
        if link.connected:
            publisher.publish_due()
