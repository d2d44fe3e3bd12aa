"""Mocks driven from the device's side behave like the hardware."""

import datetime as dt
import threading
import time

import numpy as np
import pytest

from common import idnumber
from hal.card.identity import Identity
from hal.card.mock import MockCardReader
from hal.errors import CardReadError, NoCardError, NoFingerError
from hal.speaker import SilentSpeaker
from hal.vein import Prompt
from hal.vein.mock import MockVeinSensor

BORN = dt.date(1949, 1, 20)
PERSON = Identity(
    id_number=idnumber.make("320102", BORN, 5),
    name="陈志强",
    sex="M",
    nation="01",
    birth_date=BORN,
    source="resident-id",
    photo_reason="test card without photo",
)


def finger(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(40, 200, (170, 80), dtype=np.uint8)


def test_card_reader_follows_insert_and_remove() -> None:
    with MockCardReader() as reader:
        assert reader.poll() is None
        reader.insert(PERSON)
        assert reader.poll() == PERSON
        reader.remove()
        assert reader.poll() is None
    assert reader.closed


def test_card_reader_wait_sees_a_card_inserted_later() -> None:
    reader = MockCardReader()
    threading.Timer(0.1, reader.insert, args=(PERSON,)).start()
    assert reader.wait(timeout=2, interval=0.02) == PERSON


def test_card_reader_wait_times_out() -> None:
    with pytest.raises(NoCardError):
        MockCardReader().wait(timeout=0.1, interval=0.02)


def test_card_reader_failure_is_a_read_error() -> None:
    reader = MockCardReader()
    reader.insert(PERSON)
    reader.fail()
    with pytest.raises(CardReadError):
        reader.poll()
    assert reader.poll() == PERSON


def test_vein_capture_prompts_place_then_returns_the_image() -> None:
    sensor = MockVeinSensor()
    prompts: list[Prompt] = []
    threading.Timer(0.1, sensor.present, args=(finger(),)).start()
    image = sensor.capture(timeout=2, on_prompt=prompts.append)
    assert np.array_equal(image, finger())
    assert prompts == [Prompt.PLACE_FINGER]


def test_vein_one_capture_per_placement() -> None:
    sensor = MockVeinSensor()
    sensor.present(finger())
    sensor.capture(timeout=1)
    prompts: list[Prompt] = []
    with pytest.raises(NoFingerError, match="release finger"):
        sensor.capture(timeout=0.1, on_prompt=prompts.append)
    assert prompts == [Prompt.RELEASE_FINGER]
    sensor.lift()
    sensor.present(finger(2))
    assert np.array_equal(sensor.capture(timeout=1), finger(2))


def test_vein_flat_image_is_no_vein() -> None:
    sensor = MockVeinSensor()
    sensor.present(np.full((170, 80), 128, np.uint8))
    prompts: list[Prompt] = []
    start = time.monotonic()
    with pytest.raises(NoFingerError):
        sensor.capture(timeout=0.2, on_prompt=prompts.append)
    assert prompts == [Prompt.NO_VEIN]
    assert time.monotonic() - start < 1


def test_silent_speaker_keeps_prompts() -> None:
    speaker = SilentSpeaker()
    speaker.say("请看摄像头")
    speaker.say("Please look at the camera", "en")
    assert speaker.said == [("zh", "请看摄像头"), ("en", "Please look at the camera")]
    with pytest.raises(ValueError, match="language"):
        speaker.say("Bonjour", "fr")
