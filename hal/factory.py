"""Open devices from config: the section's ``type`` picks the backend, else the environment.

``LIFECERT_HAL_<KIND>`` (``CAMERA``, ``ID_CARD``, ``SS_CARD``, ``VEIN``,
``SPEAKER``) names a backend when the config has no section for the device,
optionally with its main argument: ``ga467:/dev/ttyUSB0``,
``replay:/srv/frames``, ``opencv:/dev/video2``. No section and no variable is
an error; nothing falls back to a mock.
"""

import os
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from common.errors import ConfigError
from hal.camera import Camera
from hal.card import CardReader
from hal.config import CameraConfig, CardConfig, SpeakerConfig, VeinConfig
from hal.errors import BackendUnavailableError
from hal.speaker import Speaker
from hal.vein import VeinSensor

_EXAMPLES = {
    "camera": "replay:/srv/frames",
    "id_card": "ga467:/dev/ttyUSB0",
    "ss_card": "pcsc",
    "vein": "serial:/dev/ttyUSB1",
    "speaker": "espeak",
}
# backend type -> the field its "type:argument" environment form sets
_MAIN_ARG = {
    "replay": "source",
    "opencv": "device",
    "picamera2": "index",
    "ga467": "port",
    "pcsc": "reader",
    "serial": "port",
    "espeak": "device",
}


def _from_env(kind: str, union: Any, environ: Mapping[str, str] | None) -> Any:
    name = f"LIFECERT_HAL_{kind.upper()}"
    value = (os.environ if environ is None else environ).get(name, "").strip()
    if not value:
        raise BackendUnavailableError(
            f"no {kind} backend configured: add [hal.{kind}] with a type to the config "
            f"or set {name} (e.g. {name}={_EXAMPLES[kind]})"
        )
    backend, _, arg = value.partition(":")
    data: dict[str, Any] = {"type": backend}
    if arg and backend in _MAIN_ARG:
        data[_MAIN_ARG[backend]] = arg
    adapter: TypeAdapter[Any] = TypeAdapter(union)
    try:
        return adapter.validate_python(data, context={"base_dir": None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][1:]) or 'type'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{name}={value}: {problems}") from None


def open_camera(config: Any = None, environ: Mapping[str, str] | None = None) -> Camera:
    """The camera described by ``config`` (a ``[hal.camera]`` section) or the environment."""
    cfg = config if config is not None else _from_env("camera", CameraConfig, environ)
    if cfg.type == "replay":
        from hal.camera.replay import ReplayCamera

        return ReplayCamera(cfg.source, fps=cfg.fps, loop=cfg.loop)
    if cfg.type == "opencv":
        from hal.camera.opencv import OpenCVCamera

        return OpenCVCamera(cfg.device, width=cfg.width, height=cfg.height, fps=cfg.fps)
    from hal.camera.picamera2 import Picamera2Camera

    return Picamera2Camera(cfg.index, width=cfg.width, height=cfg.height, fps=cfg.fps)


def open_card_reader(
    config: Any = None, kind: str = "id_card", environ: Mapping[str, str] | None = None
) -> CardReader:
    """The reader for ``kind`` (``id_card`` or ``ss_card``) from its section or the environment."""
    cfg = config if config is not None else _from_env(kind, CardConfig, environ)
    if cfg.type == "ga467":
        from hal.card.ga467 import GA467CardReader

        return GA467CardReader(
            cfg.port,
            baudrate=cfg.baudrate,
            timeout=cfg.timeout,
            retries=cfg.retries,
            wlt_library=cfg.wlt_library,
            wlt_function=cfg.wlt_function,
        )
    if cfg.type == "pcsc":
        from hal.card.pcsc import PcscCardReader

        return PcscCardReader(cfg.reader)
    from hal.card.mock import MockCardReader

    return MockCardReader()


def open_vein_sensor(config: Any = None, environ: Mapping[str, str] | None = None) -> VeinSensor:
    """The vein sensor from ``[hal.vein]`` or the environment."""
    cfg = config if config is not None else _from_env("vein", VeinConfig, environ)
    if cfg.type == "serial":
        from hal.vein.serialport import SerialVeinSensor

        return SerialVeinSensor(
            cfg.port, baudrate=cfg.baudrate, timeout=cfg.timeout, retries=cfg.retries
        )
    from hal.vein.mock import MockVeinSensor

    return MockVeinSensor()


def open_speaker(config: Any = None, environ: Mapping[str, str] | None = None) -> Speaker:
    """The speaker from ``[hal.speaker]`` or the environment."""
    cfg = config if config is not None else _from_env("speaker", SpeakerConfig, environ)
    if cfg.type == "espeak":
        from hal.speaker import EspeakSpeaker

        return EspeakSpeaker(rate=cfg.rate, volume=cfg.volume, device=cfg.device)
    from hal.speaker import SilentSpeaker

    return SilentSpeaker()
