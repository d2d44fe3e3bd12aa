"""The ``lifecert`` CLI: documented commands, the operator's workflow, clear errors."""

import json
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from provisioning.cli import main


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("path", _commands(main), ids=lambda p: " ".join(p) or "lifecert")
def test_every_command_help_has_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    example = result.output.split("Example:", 1)
    assert len(example) == 2, f"no example in `lifecert {' '.join(path)} --help`"
    assert "lifecert " + " ".join(path[:1]) in example[1]


def _run(*args: str) -> click.testing.Result:
    return CliRunner().invoke(main, list(args))


def test_operator_workflow(tmp_path: Path) -> None:
    d = str(tmp_path / "fleet")
    made = _run("fleet", "init", "--dir", d, "--name", "city", "--broker-port", "18883")
    assert made.exit_code == 0, made.output
    assert "created" in made.output
    enrolled = _run("fleet", "enrol", "term-0001", "--dir", d, "--tar")
    assert enrolled.exit_code == 0, enrolled.output
    assert (tmp_path / "fleet" / "bundles" / "term-0001.tar.gz").is_file()
    assert _run("fleet", "enrol", "term-0002", "--dir", d).exit_code == 0
    revoked = _run("fleet", "revoke", "term-0002", "--dir", d, "--reason", "stolen")
    assert revoked.exit_code == 0, revoked.output
    assert "no running broker found" in revoked.output
    table = _run("fleet", "list", "--dir", d)
    assert re.search(r"term-0001\s+default\s+active", table.output)
    assert re.search(r"term-0002\s+default\s+revoked.*stolen", table.output)
    listed = json.loads(_run("fleet", "list", "--dir", d, "--json").output)
    assert [(x["id"], x["status"]) for x in listed] == [
        ("term-0001", "active"),
        ("term-0002", "revoked"),
    ]
    conf = _run("fleet", "broker-config", "--dir", d, "--port", "18999", "--bind", "127.0.0.1")
    assert conf.exit_code == 0, conf.output
    text = (tmp_path / "fleet" / "broker" / "mosquitto.conf").read_text()
    assert "listener 18999 127.0.0.1" in text
    assert _run("fleet", "crl", "--dir", d, "--no-reload").exit_code == 0


def test_dir_comes_from_the_environment(tmp_path: Path) -> None:
    env = {"LIFECERT_FLEET_DIR": str(tmp_path / "f")}
    runner = CliRunner()
    assert runner.invoke(main, ["fleet", "init", "--name", "x"], env=env).exit_code == 0
    assert runner.invoke(main, ["fleet", "enrol", "term-0001"], env=env).exit_code == 0
    assert "term-0001" in runner.invoke(main, ["fleet", "list"], env=env).output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["fleet", "enrol", "Bad_Id"], 1, "invalid device_id 'Bad_Id'"),
        (["fleet", "enrol", "lifecert-x"], 1, "reserved for services"),
        (["fleet", "enrol", "term-0001"], 1, "already enrolled"),
        (["fleet", "revoke", "term-0404"], 1, "not enrolled in this fleet"),
        (["fleet", "init", "--name", "again"], 1, "already holds a fleet"),
        (["fleet", "broker-config", "--port", "0"], 2, "Invalid value for '--port'"),
    ],
)
def test_bad_input_is_one_clear_line(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    d = str(tmp_path / "fleet")
    assert _run("fleet", "init", "--dir", d, "--name", "x").exit_code == 0
    assert _run("fleet", "enrol", "term-0001", "--dir", d).exit_code == 0
    result = _run(*args, "--dir", d)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_missing_fleet_and_bad_fleet_toml(tmp_path: Path) -> None:
    missing = _run("fleet", "list", "--dir", str(tmp_path / "none"))
    assert missing.exit_code == 1
    assert "no fleet at" in missing.output and "lifecert fleet init" in missing.output
    d = tmp_path / "fleet"
    assert _run("fleet", "init", "--dir", str(d), "--name", "x").exit_code == 0
    (d / "fleet.toml").write_text('name = "x"\n[broker]\nport = "eighty"\nhots = 1\n')
    bad = _run("fleet", "list", "--dir", str(d))
    assert bad.exit_code == 2
    assert "broker.port" in bad.output and "broker.hots: unknown field" in bad.output


def test_bad_fleet_init_values(tmp_path: Path) -> None:
    result = _run("fleet", "init", "--dir", str(tmp_path / "f"), "--name", "x", "--root", "a/#")
    assert result.exit_code == 2
    assert "root" in result.output and "wildcards" in result.output
    assert not (tmp_path / "f" / "fleet.toml").exists()


def test_list_warns_before_the_crl_expires(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = str(tmp_path / "fleet")
    monkeypatch.setenv("LIFECERT_FLEET__PKI__CRL_DAYS", "3")
    assert _run("fleet", "init", "--dir", d, "--name", "x").exit_code == 0
    assert "CRL expires soon" in _run("fleet", "list", "--dir", d).output
    monkeypatch.setenv("LIFECERT_FLEET__PKI__CRL_DAYS", "90")
    assert _run("fleet", "crl", "--dir", d, "--no-reload").exit_code == 0
    assert "CRL expires soon" not in _run("fleet", "list", "--dir", d).output
