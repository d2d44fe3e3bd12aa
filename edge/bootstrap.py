"""The one place the terminal's parts are wired from ``edge.toml`` (Cosmic Python's bootstrap).

``open_outbox`` (the durable outbox), ``open_link`` (the process's one broker
connection), ``open_session`` (the session core over HAL devices, the verified
model bundle, the template cache and references, the recorder) and
``open_desk`` (the kiosk's staff log-in). The entry points
(``edge.cli``, ``edge.service``, ``edge.kiosk.runner``) call these and nothing
else builds adapters.

Devices come from ``[hal.*]`` (or ``LIFECERT_HAL_<KIND>``, see hal.factory);
a terminal needs a camera and at least one card reader, the vein sensor and
the speaker are optional (no speaker section: silent, logged).
"""

import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

from common.errors import ConfigError
from edge.adapters import keys as edge_keys
from edge.adapters.mqtt import MqttLink, OnAck, OnCert, OnConnect, OnFleet, tls_context
from edge.adapters.outbox import Clock, Outbox
from edge.adapters.recorder import Recorder
from edge.adapters.templates import CentralTemplates, Fetch, Requester
from edge.config import EdgeConfig
from edge.fleet.agent import FleetAgent
from edge.fleet.software import SoftwareUpdater
from edge.fleet.updates import Updater
from edge.kiosk.desk import Desk, StaffBook
from edge.kiosk.directory import DirectoryFile, certificate_site
from edge.kiosk.lockout import PinLockout
from edge.session.core import Session
from edge.session.ports import Choices, Display, Lookups, Ports
from protocol import signing

log = logging.getLogger(__name__)


def open_outbox(cfg: EdgeConfig, clock: Clock = time.time) -> Outbox:
    """The outbox named by ``cfg`` (``<data_dir>/edge.sqlite``)."""
    return Outbox(
        cfg.db_path,
        cfg.device_id,
        ack_timeout_s=cfg.outbox.ack_timeout_s,
        backoff_max_s=cfg.outbox.backoff_max_s,
        busy_timeout_s=cfg.outbox.busy_timeout_s,
        clock=clock,
    )


def open_link(
    cfg: EdgeConfig,
    on_ack: OnAck,
    on_connect: OnConnect | None = None,
    on_cert: OnCert | None = None,
    on_fleet: OnFleet | None = None,
) -> MqttLink:
    """The terminal's MQTT link (not started), logged in as its device id.

    One per process: it carries results and acks, template requests and replies, status
    and telemetry; the broker lets the device id connect once (a second connection under
    it would end the first).
    """
    return MqttLink(
        cfg,
        edge_keys.device_key_path(cfg),
        on_ack=on_ack,
        on_connect=on_connect,
        on_cert=on_cert,
        on_fleet=on_fleet,
    )


def open_updater(cfg: EdgeConfig) -> Updater:
    """The model bundle's releases and updater; downloads use the device's TLS identity."""
    return Updater(cfg, tls_context(cfg, edge_keys.device_key_path(cfg)))


def open_software_updater(cfg: EdgeConfig) -> SoftwareUpdater:
    """The terminal software's releases and updater (``<data_dir>/software``)."""
    return SoftwareUpdater(cfg, tls_context(cfg, edge_keys.device_key_path(cfg)))


def open_fleet(
    cfg: EdgeConfig,
    on_config: Callable[[EdgeConfig], None],
    on_restart: Callable[[], None],
) -> FleetAgent:
    """The fleet agent: desired config, signed commands, updates (``start`` it on the link)."""
    keys = edge_keys.load(cfg)
    return FleetAgent(
        cfg,
        keys.signer,
        keys.central_verifier,
        open_updater(cfg),
        open_software_updater(cfg),
        on_config,
        on_restart,
    )


def open_directory(cfg: EdgeConfig) -> DirectoryFile | None:
    """Central's staff directory when ``[kiosk] staff_directory`` is set, for this
    terminal's site (its certificate's OU), verified with ``[central] sign_pub``."""
    path = cfg.kiosk.staff_directory
    if path is None:
        return None
    try:
        verifier = signing.Verifier(signing.load_public_key(cfg.central.sign_pub))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"central.sign_pub: cannot load {cfg.central.sign_pub}: {exc}") from None
    return DirectoryFile(path, verifier, certificate_site(cfg.mqtt.tls.cert_file))


def open_desk(cfg: EdgeConfig) -> Desk | None:
    """Desk mode when ``[kiosk] staff_file`` is set: its staff, the lock-out in edge.sqlite."""
    kiosk = cfg.kiosk
    if kiosk.staff_file is None:
        return None
    lockout = PinLockout(
        cfg.db_path,
        max_failures=kiosk.pin_max_failures,
        max_failures_all=kiosk.pin_max_failures_all,
        lockout_s=kiosk.pin_lockout_s,
        lockout_max_s=kiosk.pin_lockout_max_s,
        busy_timeout_s=cfg.outbox.busy_timeout_s,
    )
    try:
        return Desk(StaffBook(kiosk.staff_file), lockout, open_directory(cfg))
    except BaseException:
        lockout.close()
        raise


def _configured(section: object, kind: str) -> bool:
    return section is not None or bool(os.environ.get(f"LIFECERT_HAL_{kind.upper()}"))


@contextmanager
def open_session(
    cfg: EdgeConfig,
    outbox: Outbox,
    display: Display,
    link: Requester | None = None,
    rng: random.Random | None = None,
    choices: Choices | None = None,
) -> Iterator[Session]:
    """A session over the devices and bundle ``cfg`` names; closes them on exit.

    ``link``: the process's broker link (``open_link``), over which the session asks central
    for templates (``[session] central_templates``). Without one (a session in another
    process than its terminal's service) it asks nothing: references come from the
    encrypted cache, else the card photo; with one it also answers status lookups and
    fetches receipts (``edge.adapters.status.KioskLookups``). ``choices``: what the person
    chose on the kiosk page before the card ("check my status").
    """
    # The session's devices and models (the TFLite runtime, SciPy for veins, the HAL backends)
    # load here, not with this module: the command line and a terminal without a kiosk
    # open only the outbox, and start in half the time.
    from edge.adapters.cache import TemplateCache
    from edge.adapters.cache import key_for as cache_key_for
    from edge.adapters.devices import (
        CardSlots,
        PipelineFaces,
        QueuedVoice,
        SensorVeins,
        SystemClock,
        vein_threshold,
    )
    from edge.adapters.receipts import CentralReceipts
    from edge.adapters.status import CentralStatus, KioskLookups
    from edge.adapters.templates import References
    from hal import factory
    from hal.speaker import SilentSpeaker
    from models.pipeline import FacePipeline

    keys = edge_keys.load(cfg)
    device_key = signing.load_private_key(edge_keys.device_key_path(cfg))
    hal = cfg.hal
    if cfg.central.model_sign_pub is None:
        raise ConfigError("central.model_sign_pub: the session needs the model-signing key")
    with ExitStack() as stack:
        pipeline = stack.enter_context(
            FacePipeline.open(cfg.models.bundle, cfg.central.model_sign_pub, cfg.models.threads)
        )
        faces = PipelineFaces(pipeline)  # refuses a PAD model without its signed threshold
        # a vein sensor needs the bundle's signed vein threshold: checked before opening it
        threshold = vein_threshold(pipeline.manifest) if _configured(hal.vein, "vein") else None
        camera = stack.enter_context(factory.open_camera(hal.camera))
        readers = [
            stack.enter_context(factory.open_card_reader(section, kind))
            for kind, section in (("id_card", hal.id_card), ("ss_card", hal.ss_card))
            if _configured(section, kind)
        ] or [stack.enter_context(factory.open_card_reader(None, "id_card"))]
        veins = (
            SensorVeins(stack.enter_context(factory.open_vein_sensor(hal.vein)), threshold)
            if threshold is not None
            else None
        )
        if _configured(hal.speaker, "speaker"):
            speaker = stack.enter_context(factory.open_speaker(hal.speaker))
        else:
            log.info("no [hal.speaker]: voice prompts are off")
            speaker = SilentSpeaker()
        voice = QueuedVoice(speaker)
        stack.callback(voice.close)
        fetch: Fetch | None = None
        if link is not None and cfg.session.central_templates:
            fetch = CentralTemplates(
                link,
                cfg.device_id,
                keys.central_verifier,
                keys.signer.private_keys
                if isinstance(keys.signer, edge_keys.DeviceSigner)
                else device_key,
                faces.template_model,
                cfg.session.template_timeout_s,
            ).fetch
        lookups: Lookups | None = None
        if link is not None:
            timeout = cfg.session.template_timeout_s
            verifier = keys.central_verifier
            lookups = KioskLookups(
                CentralStatus(link, cfg.device_id, verifier, timeout),
                CentralReceipts(link, cfg.device_id, verifier, keys.central_sign_kid, timeout),
                outbox,
            )
        cache = stack.enter_context(
            TemplateCache(
                cfg.db_path, cache_key_for(cfg.data_dir, device_key), cfg.outbox.busy_timeout_s
            )
        )
        ports = Ports(
            cards=CardSlots(readers),
            camera=camera,
            faces=faces,
            references=References(cache, fetch),
            recorder=Recorder(outbox, keys),
            voice=voice,
            display=display,
            clock=SystemClock(),
            veins=veins,
            lookups=lookups,
            choices=choices,
        )
        yield Session(ports, cfg.session, cfg.device_id, rng)
