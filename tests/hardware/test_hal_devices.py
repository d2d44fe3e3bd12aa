"""Real devices, run only when environment variables name them.

- ``LIFECERT_HW_ID_CARD=/dev/ttyUSB0``  a GA/T 467 reader with a card on it
- ``LIFECERT_HW_SS_CARD=<reader name part>``  a PC/SC reader holding a social-security card
- ``LIFECERT_HW_VEIN=/dev/ttyUSB1``  a vein module speaking our protocol (place a finger)
- ``LIFECERT_HW_CAMERA=/dev/video0``  a V4L2 camera
- ``LIFECERT_HW_PICAMERA=0``  a Raspberry Pi camera index
- ``LIFECERT_HW_SPEAKER=1``  play prompts on the default audio device
"""

import os

import numpy as np
import pytest

pytestmark = pytest.mark.hardware


def device(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        pytest.skip(f"set {name} to run this test on real hardware")
    return value


def test_ga467_reads_the_card_on_the_reader() -> None:
    from hal.card.ga467 import GA467CardReader

    with GA467CardReader(device("LIFECERT_HW_ID_CARD")) as reader:
        identity = reader.wait(timeout=20)
    assert len(identity.id_number) == 18
    assert identity.photo is not None or identity.photo_reason


def test_pcsc_reads_a_social_security_card() -> None:
    from hal.card.pcsc import PcscCardReader

    with PcscCardReader(device("LIFECERT_HW_SS_CARD")) as reader:
        identity = reader.wait(timeout=20)
    assert identity.source == "social-security" and len(identity.id_number) == 18


def test_vein_module_captures() -> None:
    from hal.vein.serialport import SerialVeinSensor

    with SerialVeinSensor(device("LIFECERT_HW_VEIN")) as sensor:
        image = sensor.capture(timeout=30, on_prompt=lambda p: print(p.value))
    assert image.dtype == np.uint8 and image.ndim == 2 and image.std() > 5


def test_v4l2_camera_delivers_rgb_frames() -> None:
    from hal.camera.opencv import OpenCVCamera

    with OpenCVCamera(device("LIFECERT_HW_CAMERA")) as cam:
        frames = list(cam.frames(5))
    assert frames[0].rgb.ndim == 3 and frames[0].rgb.shape[2] == 3
    assert frames[-1].timestamp > frames[0].timestamp


def test_pi_camera_delivers_rgb_frames() -> None:
    from hal.camera.picamera2 import Picamera2Camera

    with Picamera2Camera(int(device("LIFECERT_HW_PICAMERA"))) as cam:
        frame = cam.read()
    assert frame.rgb.shape[2] == 3


def test_speaker_plays_both_languages() -> None:
    from hal.speaker import EspeakSpeaker

    device("LIFECERT_HW_SPEAKER")
    speaker = EspeakSpeaker()
    speaker.say("请看摄像头", "zh")
    speaker.say("Please look at the camera", "en")
