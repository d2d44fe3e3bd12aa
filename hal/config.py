"""Config sections for ``[hal.*]``: one discriminated union on ``type`` per device kind.

Every device is optional: a terminal without a vein sensor leaves
``[hal.vein]`` out. ``type = "mock"`` is accepted only because someone wrote it.
"""

from typing import Annotated, Literal

from pydantic import Field

from common.config import ConfigPath, Section


def _type(kind: str, name: str) -> object:
    return Field(title="Backend", description=f"{kind} backend: {name}")


class ReplayCameraConfig(Section):
    """Frames from a folder of images or a video (demos, field diagnosis)."""

    type: Literal["replay"] = _type("camera", "replay")  # type: ignore[assignment]
    source: ConfigPath = Field(
        title="Source", description="folder of JPEG/PNG frames (name order) or a video file"
    )
    fps: float = Field(15.0, gt=0, title="Frame rate", description="frames per second to pace")
    loop: bool = Field(False, title="Loop", description="start over at the end of the recording")


class OpenCVCameraConfig(Section):
    """A V4L2 camera (USB webcam) through OpenCV."""

    type: Literal["opencv"] = _type("camera", "opencv")  # type: ignore[assignment]
    device: str = Field("/dev/video0", title="Device", description="V4L2 device node")
    width: int = Field(640, gt=0, title="Width", description="frame width in pixels")
    height: int = Field(480, gt=0, title="Height", description="frame height in pixels")
    fps: int = Field(15, gt=0, title="Frame rate", description="frames per second")


class Picamera2CameraConfig(Section):
    """The Raspberry Pi camera through picamera2."""

    type: Literal["picamera2"] = _type("camera", "picamera2")  # type: ignore[assignment]
    index: int = Field(0, ge=0, title="Camera index", description="libcamera camera number")
    width: int = Field(640, gt=0, title="Width", description="frame width in pixels")
    height: int = Field(480, gt=0, title="Height", description="frame height in pixels")
    fps: int = Field(15, gt=0, title="Frame rate", description="frames per second")


class GA467Config(Section):
    """Resident-ID card reader on a serial line (GA/T 467)."""

    type: Literal["ga467"] = _type("card", "ga467")  # type: ignore[assignment]
    port: str = Field("/dev/ttyUSB0", title="Port", description="serial device node (or a pty)")
    baudrate: int = Field(115200, gt=0, title="Baud rate", description="line speed, 8N1")
    timeout: float = Field(1.0, gt=0, title="Timeout", description="seconds to wait for a reply")
    retries: int = Field(3, ge=1, title="Retries", description="attempts per command")
    wlt_library: ConfigPath | None = Field(
        None,
        title="WLT decoder library",
        description="path of the reader vendor's WLT photo decoder (.so); none: no card photo",
    )
    wlt_function: str = Field(
        "unpack", title="WLT function", description="exported decoder function name"
    )


class PcscConfig(Section):
    """Social-security card reader over PC/SC."""

    type: Literal["pcsc"] = _type("card", "pcsc")  # type: ignore[assignment]
    reader: str = Field(
        "", title="Reader", description="part of the PC/SC reader name; empty: the first reader"
    )


class MockCardConfig(Section):
    """A card reader driven by the demo or tests."""

    type: Literal["mock"] = _type("card", "mock")  # type: ignore[assignment]


class SerialVeinConfig(Section):
    """A finger-vein module on a serial line."""

    type: Literal["serial"] = _type("vein", "serial")  # type: ignore[assignment]
    port: str = Field("/dev/ttyUSB1", title="Port", description="serial device node (or a pty)")
    baudrate: int = Field(115200, gt=0, title="Baud rate", description="line speed, 8N1")
    timeout: float = Field(1.0, gt=0, title="Timeout", description="seconds to wait for a reply")
    retries: int = Field(3, ge=1, title="Retries", description="attempts per command")


class MockVeinConfig(Section):
    """A vein sensor driven by the demo or tests."""

    type: Literal["mock"] = _type("vein", "mock")  # type: ignore[assignment]


class EspeakConfig(Section):
    """Voice prompts through espeak-ng (Mandarin and English)."""

    type: Literal["espeak"] = _type("speaker", "espeak")  # type: ignore[assignment]
    rate: int = Field(140, gt=40, title="Rate", description="words per minute (slower for elders)")
    volume: int = Field(150, ge=0, le=200, title="Volume", description="espeak-ng amplitude")
    device: str | None = Field(
        None, title="ALSA device", description="play through aplay on this device; none: default"
    )


class SilentConfig(Section):
    """No voice prompts."""

    type: Literal["silent"] = _type("speaker", "silent")  # type: ignore[assignment]


CameraConfig = Annotated[
    ReplayCameraConfig | OpenCVCameraConfig | Picamera2CameraConfig, Field(discriminator="type")
]
CardConfig = Annotated[GA467Config | PcscConfig | MockCardConfig, Field(discriminator="type")]
VeinConfig = Annotated[SerialVeinConfig | MockVeinConfig, Field(discriminator="type")]
SpeakerConfig = Annotated[EspeakConfig | SilentConfig, Field(discriminator="type")]


class HalSettings(Section):
    """``[hal]``: which backend drives each device; a missing device is not fitted."""

    camera: CameraConfig | None = Field(
        None, title="Camera", description="[hal.camera] type = replay | opencv | picamera2"
    )
    id_card: CardConfig | None = Field(
        None, title="Resident-ID reader", description="[hal.id_card] type = ga467 | mock"
    )
    ss_card: CardConfig | None = Field(
        None, title="Social-security card reader", description="[hal.ss_card] type = pcsc | mock"
    )
    vein: VeinConfig | None = Field(
        None, title="Finger-vein sensor", description="[hal.vein] type = serial | mock"
    )
    speaker: SpeakerConfig | None = Field(
        None, title="Speaker", description="[hal.speaker] type = espeak | silent"
    )
