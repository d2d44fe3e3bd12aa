"""The emulators as shipped tools: ``python -m hal.emulators`` driven through stdin."""

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from hal.card.ga467 import GA467CardReader
from hal.emulators.cli import main
from hal.vein.serialport import SerialVeinSensor


@pytest.fixture
def spawn() -> Iterator:  # type: ignore[type-arg]
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> tuple[subprocess.Popen[str], str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hal.emulators", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert " on /dev/" in line, proc.stderr.read() if proc.stderr else line
        return proc, line.rsplit(" on ", 1)[1].strip()

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)


def command(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == f"ok: {line}"


def test_ga467_tool_serves_a_card_file_and_takes_commands(
    spawn, shared_data: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    face = shared_data / "faces/lfw/images/Aaron_Eckhart/Aaron_Eckhart_0001.jpg"
    card = tmp_path / "card.toml"
    card.write_text(
        'id_number = "11010519491231002X"\nname = "赵淑珍"\nsex = "F"\n'
        f'birth_date = 1949-12-31\nphoto = "{face}"\n',
        encoding="utf-8",
    )
    second = tmp_path / "second.toml"
    second.write_text(
        'id_number = "110105194803150012"\nname = "孙德明"\nsex = "M"\nbirth_date = 1948-03-15\n',
        encoding="utf-8",
    )
    proc, path = spawn("ga467", "--card", str(card), "--card", str(second))
    with GA467CardReader(path, timeout=0.5) as reader:
        identity = reader.poll()
        assert identity is not None and identity.name == "赵淑珍"
        assert identity.photo is not None and identity.photo.shape == (250, 250, 3)
        command(proc, "garbage 1")
        assert reader.poll() is not None
        command(proc, "remove")
        assert reader.poll() is None
        command(proc, "insert 2")
        other = reader.poll()
        assert other is not None and other.name == "孙德明" and other.photo is None
    proc.communicate("quit\n", timeout=5)
    assert proc.returncode == 0


def test_vein_tool_places_and_lifts(spawn, shared_data: Path) -> None:  # type: ignore[no-untyped-def]
    bmp = shared_data / "vein/campus64/F0701.bmp"
    proc, path = spawn("vein")
    with SerialVeinSensor(path, timeout=0.5) as sensor:
        assert not sensor.finger_present()
        command(proc, f"place {bmp}")
        with Image.open(bmp) as img:
            assert np.array_equal(sensor.capture(timeout=2), np.asarray(img))
        command(proc, "lift")
        start = time.monotonic()
        assert not sensor.finger_present()
        assert time.monotonic() - start < 1
    proc.communicate("quit\n", timeout=5)


def test_every_command_has_an_example() -> None:
    for name, cmd in main.commands.items():
        assert "Example: lifecert-emulator " + name in (cmd.help or ""), name


def test_bad_card_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "card.toml"
    bad.write_text('name = "x"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["ga467", "--card", str(bad)])
    assert result.exit_code == 2
    assert "needs id_number" in result.output
