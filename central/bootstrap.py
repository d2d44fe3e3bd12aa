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
from central.certification.templates import TemplateAnswers, TemplateService
from central.channels.answers import PhoneAnswers
from central.channels.codes import Deliveries, PhoneCodes, mobile_gate
from central.config import CentralConfig
from central.notify import adapters, outbox
from central.notify.base import Notifier
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
    def ingestor(self) -> Ingestor:
        """Verifies and applies results, trusting the fleet's devices under the policy."""
        root = self.cfg.mqtt.root if self.cfg.mqtt else topics.ROOT
        remote = frozenset(self.cfg.phone.remote_devices)
        return Ingestor(self.engine, self.trust, self.cfg.policy, root, remote, mobile_gate)

    @cached_property
    def notifiers(self) -> dict[str, Notifier]:
        """The adapter of each notify channel (``[notify] channels``)."""
        return adapters.build(self.cfg.notify)

    def sender(self) -> outbox.Sender:
        """Delivers the outbox's due messages through ``notifiers``."""
        return outbox.Sender(self.engine, self.notifiers, self.cfg.notify)

    def check(self) -> None:
        """Load everything ``run`` needs: files present, [mqtt], CA/CRL/devices, both keys."""
        if missing := self.cfg.missing_files():
            raise ConfigError("missing files:\n  - " + "\n  - ".join(missing))
        self.cfg.require_mqtt()
        _ = self.trust, self.signer, self.seal_key, self.notifiers

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
        return PhoneAnswers(codes, phone, self.signer)

    def template_service(self, link: Link) -> TemplateService:
        """The request service (templates, and the phone channel's codes), answering over
        ``link`` (add it before it starts)."""
        phone = self.phone_answers()
        answers = TemplateAnswers(
            self.engine,
            self.trust,
            self.cfg.fleet.devices_dir,
            self.seal_key,
            self.signer,
            link.settings.root,
            ops=phone.handlers() if phone else None,
        )
        return TemplateService(link, answers)

    def close(self) -> None:
        """Send the codes queued, release the database connections (if built)."""
        if "deliveries" in self.__dict__:
            self.deliveries.close()
        if "engine" in self.__dict__:
            self.engine.dispose()


class Service:
    """What ``lifecert-central run`` serves: the consumer and the template service, over the
    consumer's one broker connection (one paho client, one session), and the notifier's
    outbox sender in a thread of its own."""

    def __init__(
        self, central: Central, stop: threading.Event, client_id: str | None = None
    ) -> None:
        self.consumer = central.consumer(stop, client_id)
        self.templates = central.template_service(self.consumer.link)
        self.sender = central.sender()
        self.stop = stop

    def run(self) -> None:
        """Serve until the stop event is set: the batch in hand is finished, the template
        request subscription left, the connection closed cleanly."""
        sender = threading.Thread(target=self.sender.run, args=(self.stop,), name="notify")
        sender.start()
        try:
            with self.templates:
                self.templates.start()
                self.consumer.run()
        finally:
            self.stop.set()
            sender.join()


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
