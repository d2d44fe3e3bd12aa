"""Backend choice: config section, else LIFECERT_HAL_<KIND>; clear errors, no silent mock."""

from pathlib import Path

import pytest

from common.config import load
from common.errors import ConfigError
from hal.camera.replay import ReplayCamera
from hal.card.mock import MockCardReader
from hal.config import HalSettings
from hal.errors import BackendUnavailableError
from hal.factory import open_camera, open_card_reader, open_speaker, open_vein_sensor
from hal.speaker import SilentSpeaker
from hal.vein.mock import MockVeinSensor


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hal.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_empty_config_means_no_device_fitted() -> None:
    settings = HalSettings()
    assert settings.camera is None and settings.vein is None


def test_nothing_configured_is_an_error_naming_both_ways() -> None:
    with pytest.raises(BackendUnavailableError, match=r"\[hal.vein\].*LIFECERT_HAL_VEIN"):
        open_vein_sensor(None, environ={})


def test_config_type_picks_the_backend(tmp_path: Path) -> None:
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "a.png").write_bytes(b"")
    settings = load(
        HalSettings,
        write(
            tmp_path,
            '[camera]\ntype = "replay"\nsource = "frames"\nfps = 5\n'
            '[id_card]\ntype = "mock"\n[vein]\ntype = "mock"\n[speaker]\ntype = "silent"\n',
        ),
        "LIFECERT_TEST",
        environ={},
    )
    with open_camera(settings.camera) as cam:
        assert isinstance(cam, ReplayCamera)
        assert cam.source == tmp_path / "frames"  # relative to the config file
    assert isinstance(open_card_reader(settings.id_card), MockCardReader)
    assert isinstance(open_vein_sensor(settings.vein), MockVeinSensor)
    assert isinstance(open_speaker(settings.speaker), SilentSpeaker)


def test_unknown_type_in_config_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'ga467', 'pcsc', 'mock'"):
        load(HalSettings, write(tmp_path, '[id_card]\ntype = "acme"\n'), "X", environ={})


def test_misspelt_field_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"vein\.serial\.baud: unknown field"):
        load(
            HalSettings, write(tmp_path, '[vein]\ntype = "serial"\nbaud = 9600\n'), "X", environ={}
        )


def test_environment_names_backend_and_argument() -> None:
    with pytest.raises(BackendUnavailableError, match="/dev/ttyNOPE"):
        open_card_reader(None, "id_card", environ={"LIFECERT_HAL_ID_CARD": "ga467:/dev/ttyNOPE"})
    assert isinstance(open_speaker(None, environ={"LIFECERT_HAL_SPEAKER": "silent"}), SilentSpeaker)


def test_environment_unknown_backend() -> None:
    with pytest.raises(ConfigError, match=r"LIFECERT_HAL_CAMERA=webcam.*'replay', 'opencv'"):
        open_camera(None, environ={"LIFECERT_HAL_CAMERA": "webcam"})


def test_environment_missing_required_field() -> None:
    with pytest.raises(ConfigError, match="source"):
        open_camera(None, environ={"LIFECERT_HAL_CAMERA": "replay"})


def test_missing_device_node_is_named() -> None:
    with pytest.raises(BackendUnavailableError, match="/dev/video99"):
        open_camera(None, environ={"LIFECERT_HAL_CAMERA": "opencv:/dev/video99"})


def test_missing_package_is_named() -> None:
    try:
        import picamera2  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("picamera2 is installed here")
    with pytest.raises(BackendUnavailableError, match="picamera2"):
        open_camera(None, environ={"LIFECERT_HAL_CAMERA": "picamera2"})
