"""Wiring: build central's parts from its config, in order, and run the consumer."""

import logging
import signal
import threading
from types import FrameType

from sqlalchemy.engine import Engine

from central.certification.consumer import Consumer
from central.certification.devices import DeviceTrust
from central.certification.ingest import Ingestor
from central.certification.templates import TemplateAnswers, TemplateService, load_seal_key
from central.config import CentralConfig
from central.store import db
from common.config import secret_path
from common.errors import ConfigError
from protocol import signing, topics
from protocol.errors import SignatureError

log = logging.getLogger(__name__)


def engine_for(cfg: CentralConfig) -> Engine:
    """The database engine the config names."""
    return db.create_engine(cfg.database.url, cfg.database.busy_timeout_s)


def ingestor_for(cfg: CentralConfig, engine: Engine) -> Ingestor:
    """An ``Ingestor`` trusting the fleet's devices under the config's policy."""
    root = cfg.mqtt.root if cfg.mqtt else topics.ROOT
    trust = DeviceTrust(cfg.fleet.ca_file, cfg.fleet.crl_file, cfg.fleet.devices_dir)
    return Ingestor(engine, trust, cfg.policy, root)


def signer_for(cfg: CentralConfig) -> signing.Signer:
    """Central's ack signer (``kid`` = fingerprint of its public key)."""
    path = secret_path("sign.key", cfg.keys.sign_key)
    try:
        key = signing.load_private_key(path)
    except (OSError, ValueError, SignatureError) as exc:
        raise ConfigError(f"keys.sign_key: cannot load {path}: {exc}") from None
    return signing.Signer(key, signing.key_fingerprint(key.public_key()))


def consumer_for(
    cfg: CentralConfig, stop: threading.Event, client_id: str | None = None
) -> Consumer:
    """Migrate the database, then build a ready-to-run consumer."""
    mqtt = cfg.require_mqtt()
    if client_id:
        mqtt = mqtt.model_copy(update={"client_id": client_id})
    engine = engine_for(cfg)
    revision = db.upgrade(engine)
    log.info("database %s at revision %s", engine.url.render_as_string(), revision)
    return Consumer(mqtt, cfg.ingest, ingestor_for(cfg, engine), signer_for(cfg), stop)


def run(cfg: CentralConfig, client_id: str | None = None) -> None:
    """Run the consumer until SIGTERM or SIGINT."""
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: finishing the batch in hand", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    consumer = consumer_for(cfg, stop, client_id)
    with template_service_for(cfg, client_id) as templates:
        templates.start()
        consumer.run()


def template_service_for(cfg: CentralConfig, client_id: str | None = None) -> TemplateService:
    """The template request/response service beside the consumer (same MQTT identity)."""
    fleet = cfg.fleet
    answers = TemplateAnswers(
        engine_for(cfg),
        DeviceTrust(fleet.ca_file, fleet.crl_file, fleet.devices_dir),
        fleet.devices_dir,
        load_seal_key(secret_path("seal.key", cfg.keys.seal_key)),
        signer_for(cfg),
        cfg.require_mqtt().root,
    )
    return TemplateService(cfg.require_mqtt(), answers, client_id)
