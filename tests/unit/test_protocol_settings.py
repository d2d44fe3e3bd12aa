"""The broker password in ``[mqtt]``: a file next to the config, or a systemd credential."""

from pathlib import Path

import pytest

from common.config import load
from common.errors import ConfigError
from protocol.settings import MqttSettings, read_password

TLS = '[tls]\nca_file = "ca.pem"\ncert_file = "c.pem"\nkey_file = "k.pem"\n'


def _settings(tmp_path: Path, extra: str = 'password_file = "mqtt.password"\n') -> MqttSettings:
    (tmp_path / "m.toml").write_text(extra + TLS)
    return load(MqttSettings, tmp_path / "m.toml", "T", environ={})


def test_password_file_is_read_next_to_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    (tmp_path / "mqtt.password").write_text("s3cret\n")
    cfg = _settings(tmp_path)
    assert cfg.password_file == tmp_path / "mqtt.password"
    assert read_password(cfg) == "s3cret"
    assert read_password(_settings(tmp_path, "")) is None


def test_a_systemd_credential_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt.password").write_text("from-systemd")
    (tmp_path / "mqtt.password").write_text("from-file")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert read_password(_settings(tmp_path)) == "from-systemd"
    assert read_password(_settings(tmp_path, "")) == "from-systemd"


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, r"mqtt\.password_file: cannot read .*mqtt\.password"), ("\n", "is empty: copy")],
)
def test_unusable_password_files_name_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None, message: str
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    if content is not None:
        (tmp_path / "mqtt.password").write_text(content)
    with pytest.raises(ConfigError, match=message) as err:
        read_password(_settings(tmp_path))
    assert "Traceback" not in str(err.value)
