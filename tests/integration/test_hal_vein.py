"""SerialVeinSensor against the vein-module emulator over a real pty, with real vein crops."""

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hal.emulators.vein import VeinModuleEmulator
from hal.errors import BackendUnavailableError, NoFingerError, VeinSensorError
from hal.vein import Prompt
from hal.vein.serialport import SerialVeinSensor
from models.vein import extract, match


def crop(shared_data: Path, finger: int, capture: int) -> np.ndarray:
    path = shared_data / f"vein/campus64/F{finger:02d}{capture:02d}.bmp"
    with Image.open(path) as img:
        return np.asarray(img.convert("L"))


@pytest.fixture
def emulator() -> Iterator[VeinModuleEmulator]:
    with VeinModuleEmulator() as emu:
        yield emu


@pytest.fixture
def sensor(emulator: VeinModuleEmulator) -> Iterator[SerialVeinSensor]:
    with SerialVeinSensor(emulator.path, timeout=0.3) as s:
        yield s


def test_connect_reports_the_module(sensor: SerialVeinSensor) -> None:
    assert (sensor.firmware, sensor.width, sensor.height) == ("EMU1", 96, 170)


def test_capture_returns_the_exact_image(
    emulator: VeinModuleEmulator, sensor: SerialVeinSensor, shared_data: Path
) -> None:
    image = crop(shared_data, 1, 1)
    assert not sensor.finger_present()
    emulator.place(image)
    assert sensor.finger_present()
    assert np.array_equal(sensor.capture(timeout=2), image)


def test_prompts_place_then_release(
    emulator: VeinModuleEmulator, sensor: SerialVeinSensor, shared_data: Path
) -> None:
    prompts: list[Prompt] = []
    threading.Timer(0.25, emulator.place, args=(crop(shared_data, 2, 1),)).start()
    sensor.capture(timeout=3, on_prompt=prompts.append)
    with pytest.raises(NoFingerError, match="release finger"):
        sensor.capture(timeout=0.3, on_prompt=prompts.append)
    assert prompts == [Prompt.PLACE_FINGER, Prompt.RELEASE_FINGER]


def test_no_vein_detected(emulator: VeinModuleEmulator, sensor: SerialVeinSensor) -> None:
    emulator.place(np.full((170, 80), 250, np.uint8))
    prompts: list[Prompt] = []
    with pytest.raises(NoFingerError):
        sensor.capture(timeout=0.3, on_prompt=prompts.append)
    assert prompts == [Prompt.NO_VEIN]


@pytest.mark.parametrize("fault", ["checksum", "garbage", "silent"])
def test_recovers_from_line_faults(
    emulator: VeinModuleEmulator, sensor: SerialVeinSensor, shared_data: Path, fault: str
) -> None:
    image = crop(shared_data, 3, 2)
    emulator.place(image)
    emulator.faults.inject(**{fault: 2})
    assert np.array_equal(sensor.capture(timeout=5), image)
    assert emulator.faults.history == [fault, fault]


def test_lost_capture_reply_still_gets_that_image(
    emulator: VeinModuleEmulator, sensor: SerialVeinSensor, shared_data: Path
) -> None:
    """The module captured but its reply was lost: the retry hears RELEASE, asks IMAGE_INFO."""
    image = crop(shared_data, 4, 3)
    emulator.place(image)
    sensor.finger_present()
    emulator.faults.inject(checksum=1)
    assert np.array_equal(sensor.capture(timeout=3), image)
    assert emulator.commands[-6:-4] == ["CAPTURE", "IMAGE_INFO"]


def test_dead_line_is_a_clear_error(emulator: VeinModuleEmulator, sensor: SerialVeinSensor) -> None:
    emulator.faults.inject(silent=10)
    with pytest.raises(VeinSensorError, match="FINGER_STATUS failed: no reply"):
        sensor.finger_present()


def test_no_module_on_the_line() -> None:
    import os
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        with pytest.raises(VeinSensorError, match="CONNECT failed"):
            SerialVeinSensor(os.ttyname(slave), timeout=0.1, retries=2)
    finally:
        os.close(master)
        os.close(slave)


def test_missing_port_is_named() -> None:
    with pytest.raises(BackendUnavailableError, match="/dev/ttyACM42"):
        SerialVeinSensor("/dev/ttyACM42")


def test_captures_over_the_line_match_the_same_finger_only(
    emulator: VeinModuleEmulator, sensor: SerialVeinSensor, shared_data: Path
) -> None:
    captured = []
    for finger, capture in [(5, 1), (5, 9), (6, 1)]:
        emulator.lift()
        emulator.place(crop(shared_data, finger, capture))
        captured.append(extract(sensor.capture(timeout=2)))
    genuine = match(captured[0], captured[1])
    impostor = match(captured[0], captured[2])
    assert genuine > 0.17 > impostor  # 0.17: the campus64 threshold at FMR 1e-3
