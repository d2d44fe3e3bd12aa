"""Bootstrap: build central's shared parts from its config, each once, and run the service.

One ``Central`` per process builds, on first use, the database engine, the device trust
and central's keys (the signer of acks, replies and bank files; the key that opens sealed
templates), and hands the same ones to everything that needs them: the consumer, the
template service, the CLI's commands. ``Service`` wires what ``lifecert-central run``
serves: the consumer owns the process's one broker connection, and the template service
answers requests over it.
"""

import logging
import signal
import threading
from contextlib import ExitStack
from functools import cached_property
from pathlib import Path
from types import FrameType

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.engine import Engine

from central.certification.consumer import Consumer
from central.certification.devices import DeviceTrust
from central.certification.ingest import Ingestor
from central.certification.link import Link
from central.certification.receipts import ReceiptAnswers
from central.certification.templates import Limits, TemplateAnswers, TemplateService
from central.certification.versions import PolicyBook
from central.channels.answers import PhoneAnswers
from central.channels.codes import Deliveries, PhoneCodes, mobile_gate
from central.config import CentralConfig
from central.fleet import alerts as fleet_alerts
from central.fleet import metrics as fleet_metrics
from central.fleet.commands_link import FleetLink
from central.fleet.health import FleetHealth
from central.fleet.health_service import HealthService
from central.fleet.rollouts_server import BundleServer, server_context
from central.notify import adapters, outbox, reminders, signature
from central.notify.base import Notifier
from central.notify.webhook import WebhookNotifier
from central.payments.status import StatusAnswers
from central.staff import audit
from central.store import db
from common.config import secret_path
from common.errors import ConfigError
from protocol import signing, topics
from protocol.errors import SignatureError

log = logging.getLogger(__name__)


def _private_key(credential: str, path: Path, field: str) -> ec.EllipticCurvePrivateKey:
    """A PEM P-256 key (or the systemd credential ``credential``), an error naming ``field``."""
    path = secret_path(credential, path)
    try:
        return signing.load_private_key(path)
    except (OSError, ValueError, SignatureError) as exc:
        raise ConfigError(f"{field}: cannot load {path}: {exc}") from None


class Central:
    """Central's shared parts for one config, each built once, on first use."""

    def __init__(self, cfg: CentralConfig) -> None:
        self.cfg = cfg

    @cached_property
    def engine(self) -> Engine:
        """The database engine the config names (not migrated: see ``migrate``)."""
        return db.create_engine(self.cfg.database.url, self.cfg.database.busy_timeout_s)

    @cached_property
    def trust(self) -> DeviceTrust:
        """The fleet's enrolled devices (CA, CRL and certificates, re-read as they change)."""
        fleet = self.cfg.fleet
        return DeviceTrust(fleet.ca_file, fleet.crl_file, fleet.devices_dir)

    @cached_property
    def sign_key(self) -> ec.EllipticCurvePrivateKey:
        """Central's signing key (``[keys] sign_key``)."""
        return _private_key("sign.key", self.cfg.keys.sign_key, "keys.sign_key")

    @cached_property
    def signer(self) -> signing.Signer:
        """Signs acks, replies and bank files (``kid`` = fingerprint of the public key)."""
        return signing.Signer(self.sign_key, signing.key_fingerprint(self.sign_key.public_key()))

    @cached_property
    def seal_key(self) -> ec.EllipticCurvePrivateKey:
        """The key that opens templates terminals sealed to central (``[keys] seal_key``)."""
        return _private_key("seal.key", self.cfg.keys.seal_key, "keys.seal_key")

    @cached_property
    def book(self) -> PolicyBook:
        """The policy in force on a day: ``policy_versions``, else ``[policy]`` (cached)."""
        return PolicyBook(self.engine, self.cfg.policy)

    @cached_property
    def ingestor(self) -> Ingestor:
        """Verifies and applies results, trusting the fleet's devices under the policy."""
        root = self.cfg.mqtt.root if self.cfg.mqtt else topics.ROOT
        remote = frozenset(self.cfg.phone.remote_devices)
        return Ingestor(
            self.engine, self.trust, self.cfg.policy, root, remote, mobile_gate, self.book
        )

    @cached_property
    def notifiers(self) -> dict[str, Notifier]:
        """The adapter of each notify channel (``[notify] channels``), and ``webhook``
        posting to ``[alerts] webhook_url`` when ``[alerts] notify`` names it (signed with
        ``webhook_secret_file``'s secret; without one a warning, once per process)."""
        notifiers = adapters.build(self.cfg.notify)
        a = self.cfg.alerts
        if "webhook" in a.notify:
            if "webhook" in self.cfg.notify.channels:
                raise ConfigError(
                    "notify.channels.webhook: [alerts] notify = webhook delivers the webhook "
                    "channel to [alerts] webhook_url; remove webhook from [notify] channels"
                )
            signer = None
            if a.webhook_secret_file is None:
                log.warning(
                    "[alerts] webhook_secret_file is not set: alert webhooks go unsigned "
                    "(make a secret: %s)", signature.MAKE
                )  # fmt: skip
            else:
                secret = signature.read_secret(a.webhook_secret_file, "alerts.webhook_secret_file")
                signer = signature.Signer(secret)
            notifiers["webhook"] = WebhookNotifier(
                a.webhook_timeout_s, a.webhook_attempts, url=str(a.webhook_url), signer=signer
            )
        return notifiers

    def sender(self) -> outbox.Sender:
        """Delivers the outbox's due messages through ``notifiers``."""
        return outbox.Sender(self.engine, self.notifiers, self.cfg.notify)

    def remind_daily(self, stop: threading.Event, every_s: float = 600.0) -> None:
        """Run the reminders once per day (in the policy's time zone) until ``stop``."""
        done: object = None
        while not stop.is_set():
            day = reminders.today(self.cfg.policy)
            if day != done:
                try:
                    summary = reminders.run(
                        self.engine, day, self.cfg.notify.reminders, self.cfg.policy, stop=stop
                    )
                except Exception:  # the database is away, say: try again next time round
                    log.exception("reminders for %s failed; trying again later", day)
                else:
                    log.info("reminders for %s: %s enqueued", day, summary.enqueued)
                    done = day
            stop.wait(every_s)

    def check(self) -> None:
        """Load everything ``run`` needs: files present, [mqtt], CA/CRL/devices, both keys."""
        if missing := self.cfg.missing_files():
            raise ConfigError("missing files:\n  - " + "\n  - ".join(missing))
        self.cfg.require_mqtt()
        _ = self.trust, self.signer, self.seal_key, self.notifiers
        if self.cfg.rollout.bundle_port:
            server_context(self.cfg.rollout, self.cfg.fleet.ca_file)

    def migrate(self) -> str | None:
        """Migrate the database to the code's head; the revision it is at."""
        revision = db.upgrade(self.engine)
        log.info("database %s at revision %s", self.engine.url.render_as_string(), revision)
        return revision

    def consumer(self, stop: threading.Event, client_id: str | None = None) -> Consumer:
        """Migrate the database, then a ready-to-run consumer (with the broker link)."""
        mqtt = self.cfg.require_mqtt()
        if client_id:
            mqtt = mqtt.model_copy(update={"client_id": client_id})
        self.migrate()
        return Consumer(mqtt, self.cfg.ingest, self.ingestor, self.signer, stop)

    @cached_property
    def deliveries(self) -> Deliveries:
        """The worker that texts one-time codes: straight through the adapter ``[notify]
        channels`` names for ``[phone] channel`` (a code is worth nothing after minutes, so
        not through the outbox's retries; ``log`` writes no code)."""
        channel = self.cfg.phone.channel
        if channel not in self.notifiers:
            raise ConfigError(
                f"phone.channel: {channel!r} is not a [notify] channel; "
                f"use one of {', '.join(sorted(self.notifiers))}"
            )
        return Deliveries(self.notifiers[channel])

    def phone_answers(self) -> PhoneAnswers | None:
        """Answers to remote terminals' code requests (``None``: no ``[phone]
        remote_devices``, the phone channel is off)."""
        phone = self.cfg.phone
        if not phone.remote_devices:
            return None
        secret = HKDF(hashes.SHA256(), 32, None, b"lifecert phone codes").derive(
            self.seal_key.private_numbers().private_value.to_bytes(32, "big")
        )
        codes = PhoneCodes(self.engine, phone, self.deliveries, secret)
        return PhoneAnswers(codes, phone)

    def template_service(self, link: Link) -> TemplateService:
        """The terminal request service (templates, status, receipts, the phone channel's codes),
        answering over ``link`` (add it before it starts)."""
        phone = self.phone_answers()
        answers = TemplateAnswers(
            self.engine,
            self.trust,
            self.cfg.fleet.devices_dir,
            self.seal_key,
            self.signer,
            link.settings.root,
            Limits(self.cfg.requests.burst, self.cfg.requests.per_minute),
            handlers={
                "status": StatusAnswers(self.engine, self.cfg.policy, self.site_of),
                "receipt": ReceiptAnswers(self.engine, self.signer, self.book),
                **(phone.handlers() if phone else {}),
            },
        )
        return TemplateService(link, answers)

    def alerts(self) -> fleet_alerts.Alerts:
        """The fleet alert rules (their messages go through the outbox: see ``notifiers``)."""
        fleet = self.cfg.fleet
        return fleet_alerts.Alerts(
            self.engine,
            self.cfg.alerts,
            self.cfg.policy.timezone,
            lambda: fleet_alerts.read_trust(fleet.devices_dir, fleet.crl_file),
        )

    def health_service(self, consumer: Consumer, stop: threading.Event) -> HealthService:
        """Fleet health over the consumer's link: state, alerts and (if a port is set) metrics."""
        health = FleetHealth(self.engine, self.trust.is_enrolled, consumer.link.settings.root)
        health.attach(consumer.link)
        metrics = None
        if self.cfg.metrics.port:
            collector = fleet_metrics.CentralCollector(
                self.engine, consumer.counts, consumer.backlog, health,
                self.cfg.alerts.silent_after_s,
            )  # fmt: skip
            metrics = fleet_metrics.serve(self.cfg.metrics, collector)
        return HealthService(health, self.alerts(), stop, metrics)

    def fleet_link(self, link: Link) -> FleetLink:
        """Desired configs and commands out, reports and acks in, over ``link``."""
        return FleetLink(link, self.engine, self.trust, self.signer, self.cfg.rollout)

    def bundle_server(self) -> BundleServer | None:
        """The HTTPS server of rollout bundles, if ``[rollout] bundle_port`` is set."""
        if not self.cfg.rollout.bundle_port:
            return None
        return BundleServer(self.engine, self.trust, self.cfg.rollout, self.cfg.fleet.ca_file)

    def site_of(self, kid: str) -> str | None:
        """The site of the enrolled device whose certificate has ``kid`` (None: unknown)."""
        device = self.trust.by_kid(kid)
        return device.site if device else None

    def close(self) -> None:
        """Send the codes queued, release the database connections (if built)."""
        if "deliveries" in self.__dict__:
            self.deliveries.close()
        if "engine" in self.__dict__:
            self.engine.dispose()


class Service:
    """What ``lifecert-central run`` serves: the consumer, the template service, fleet health
    (with alerts and metrics) and the fleet's configs and commands, over the consumer's one
    broker connection (one paho client, one session); the rollout bundle server, if
    configured; and threads of their own for the notifier's outbox sender, the daily
    reminders and sealing new events into the audit chain every ``[staff] seal_interval_s``."""

    def __init__(
        self, central: Central, stop: threading.Event, client_id: str | None = None
    ) -> None:
        self.stop = stop
        self.central = central
        self.consumer = central.consumer(stop, client_id)
        self.templates = central.template_service(self.consumer.link)
        self.health = central.health_service(self.consumer, threading.Event())
        self.fleet = central.fleet_link(self.consumer.link)
        self.bundles = central.bundle_server()
        self.sender = central.sender()

    def run(self) -> None:
        """Serve until the stop event is set: the batch in hand is finished, the template
        request subscription left, the connection closed cleanly, fleet state flushed."""
        central, stop = self.central, self.stop
        helpers = [
            threading.Thread(target=self.sender.run, args=(stop,), name="notify"),
            threading.Thread(target=central.remind_daily, args=(stop,), name="remind"),
            threading.Thread(
                target=audit.seal_until,
                args=(central.engine, stop, central.cfg.staff.seal_interval_s),
                name="audit-sealer",
            ),
        ]
        for thread in helpers:
            thread.start()
        try:
            with self.templates, self.health, self.fleet, ExitStack() as stack:
                if self.bundles is not None:
                    stack.enter_context(self.bundles).start()
                self.templates.start()
                self.health.start()
                self.fleet.start()
                self.consumer.run()
        finally:
            stop.set()
            for thread in helpers:
                thread.join(timeout=30)


def run(central: Central, client_id: str | None = None) -> None:
    """Run the service on ``central``'s parts until SIGTERM or SIGINT."""
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: finishing the batch in hand", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        Service(central, stop, client_id).run()
    finally:
        central.close()
