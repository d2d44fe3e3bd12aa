"""Wire a ``Session`` from ``edge.toml``: HAL devices, the verified bundle, cache, recorder.

Devices come from ``[hal.*]`` (or ``LIFECERT_HAL_<KIND>``, see hal.factory);
a terminal needs a camera and at least one card reader, the vein sensor and
the speaker are optional (no speaker section: silent, logged).
"""

import logging
import os
import random
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from common.errors import ConfigError
from edge.adapters import keys as edge_keys
from edge.adapters.cache import TemplateCache, cache_key
from edge.adapters.devices import (
    PipelineFaces,
    QueuedVoice,
    SensorVeins,
    SystemClock,
    vein_threshold,
)
from edge.adapters.outbox import Outbox
from edge.adapters.recorder import Recorder
from edge.adapters.templates import CentralTemplates, Fetch, References
from edge.config import EdgeConfig
from edge.session.core import Session
from edge.session.ports import Display, Ports
from hal import factory
from hal.card import CardReader
from hal.card.identity import Identity
from hal.speaker import SilentSpeaker
from models.pipeline import FacePipeline
from protocol import signing

log = logging.getLogger(__name__)


class CardSlots:
    """Several readers (resident-ID, social-security) seen as one: the first card found."""

    def __init__(self, readers: list[CardReader]) -> None:
        self.readers = readers

    def poll(self) -> Identity | None:
        for reader in self.readers:
            card = reader.poll()
            if card is not None:
                return card
        return None


def _configured(section: object, kind: str) -> bool:
    return section is not None or bool(os.environ.get(f"LIFECERT_HAL_{kind.upper()}"))


@contextmanager
def open_session(
    cfg: EdgeConfig,
    outbox: Outbox,
    display: Display,
    fetch: Fetch | None = None,
    rng: random.Random | None = None,
) -> Iterator[Session]:
    """A session over the devices and bundle ``cfg`` names; closes them on exit.

    Without a ``fetch``, templates are asked from central (``[session] central_templates``).
    """
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
        if fetch is None and cfg.session.central_templates:
            central = stack.enter_context(
                CentralTemplates(
                    cfg, keys, device_key, faces.template_model, cfg.session.template_timeout_s
                )
            )
            central.start()
            fetch = central.fetch
        cache = stack.enter_context(
            TemplateCache(cfg.db_path, cache_key(device_key), cfg.outbox.busy_timeout_s)
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
        )
        yield Session(ports, cfg.session, cfg.device_id, rng)
