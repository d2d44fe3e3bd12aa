"""Config loading: TOML, env overrides, errors that name the field and the fix."""

from pathlib import Path

import pytest

from common.config import load
from common.errors import ConfigError
from protocol.settings import MqttSettings

GOOD = 'host = "broker"\n[tls]\nca_file = "ca.pem"\ncert_file = "c.pem"\nkey_file = "/abs/k.pem"\n'


def test_relative_paths_resolve_next_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text(GOOD)
    cfg = load(MqttSettings, tmp_path / "m.toml", "T", environ={})
    assert cfg.tls.ca_file == tmp_path / "ca.pem"
    assert cfg.tls.key_file == Path("/abs/k.pem")
    assert cfg.port == 8883


def test_env_overrides_one_field(tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text(GOOD)
    cfg = load(MqttSettings, tmp_path / "m.toml", "T", environ={"T__PORT": "18883", "X__PORT": "1"})
    assert cfg.port == 18883 and cfg.host == "broker"


def test_errors_name_every_bad_field(tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text(GOOD.replace('host = "broker"', "port = 0\nhots = 1"))
    with pytest.raises(ConfigError) as err:
        load(MqttSettings, tmp_path / "m.toml", "T", environ={})
    text = str(err.value)
    assert "port" in text and "greater than or equal to 1" in text
    assert "hots: unknown field" in text


def test_missing_section_is_named(tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text('host = "x"\n')
    with pytest.raises(ConfigError, match="tls: required field is missing"):
        load(MqttSettings, tmp_path / "m.toml", "T", environ={})


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load(MqttSettings, tmp_path / "nope.toml", "T", environ={})
    (tmp_path / "bad.toml").write_text("host = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(MqttSettings, tmp_path / "bad.toml", "T", environ={})
