"""Central's pure parts: config, calendar arithmetic, roster parsing, device trust, CLI docs."""

import base64
import datetime as dt
import io
import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from central import config
from central.certification.devices import DeviceTrust, Standing
from central.certification.policy import add_months
from central.cli import main
from central.notify import signature
from central.people import roster
from common import idnumber
from common.errors import ConfigError
from tests.fixtures.database import CentralPki

ID = idnumber.make("110105", dt.date(1950, 3, 7), 124)


def test_sqlite_url_resolves_next_to_the_config(tmp_path: Path) -> None:
    path = tmp_path / "central.toml"
    path.write_text('[database]\nurl = "sqlite:///state/c.sqlite"\n', encoding="utf-8")
    cfg = config.load(path, environ={})
    assert cfg.database.url == f"sqlite:///{tmp_path}/state/c.sqlite"
    assert cfg.policy.validity_months == 12 and cfg.ingest.batch_size == 200
    assert (cfg.requests.burst, cfg.requests.per_minute) == (20, 30.0)  # each terminal's
    assert cfg.fleet.ca_file == tmp_path / "../ca/ca.pem"


def test_postgres_url_gets_psycopg_driver() -> None:
    cfg = config.load(None, environ={"LIFECERT_CENTRAL__DATABASE__URL": "postgresql://u@h/db"})
    assert cfg.database.url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('[database]\nurl = "mysql://x/y"\n', "database.url"),
        ("[policy]\nvalidity_months = 0\n", "policy.validity_months"),
        ('[policy]\ntimezone = "Mars/Base"\n', "unknown time zone"),
        ("[ingest]\nbatch = 3\n", "ingest.batch: unknown field"),
        ('log_level = "LOUD"\n', "log_level"),
        ("[payments]\nmonths_ahead = -1\n", "payments.months_ahead"),
        ("[payments]\nmonths_back = 601\n", "payments.months_back"),
        ("[payments]\nmonths = 3\n", "payments.months: unknown field"),
        ("[requests]\nburst = 0\n", "requests.burst"),
        ("[requests]\nper_minute = -1\n", "requests.per_minute"),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, toml: str, needle: str) -> None:
    path = tmp_path / "central.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(needle)):
        config.load(path, environ={})


def test_validate_config_exit_codes(tmp_path: Path) -> None:
    path = tmp_path / "central.toml"
    path.write_text("[policy]\nvalidity_months = 99\n", encoding="utf-8")
    bad = CliRunner().invoke(main, ["--config", str(path), "--validate-config"])
    assert bad.exit_code == 2 and "policy.validity_months" in bad.output
    assert "Traceback" not in bad.output
    path.write_text("", encoding="utf-8")
    missing = CliRunner().invoke(main, ["--config", str(path), "--validate-config"])
    assert missing.exit_code == 2 and "fleet.ca_file" in missing.output


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (dt.date(2026, 1, 31), 1, dt.date(2026, 2, 28)),
        (dt.date(2024, 2, 29), 12, dt.date(2025, 2, 28)),
        (dt.date(2026, 11, 15), 3, dt.date(2027, 2, 15)),
        (dt.date(2026, 5, 1), 12, dt.date(2027, 5, 1)),
    ],
)
def test_add_months(day: dt.date, months: int, expected: dt.date) -> None:
    assert add_months(day, months) == expected


def read_roster(text: str) -> tuple[list[tuple[int, dict[str, Any]]], list[roster.RowError]]:
    """``roster.parse`` of ``text``: the good rows (line, values) and every problem."""
    good, errors = [], []
    for line, values, problems in roster.parse(io.StringIO(text, newline="")):
        errors += problems
        if not problems:
            good.append((line, values))
    return good, errors


def test_roster_read_collects_every_error() -> None:
    text = (
        "id_number,name,sex,birth_date,bank_account\n"
        f"{ID},Wang,F,1950-03-07,6222 0212 3456 7890\n"
        f"{ID[:-1]}X,Wang,F,1950-03-07,\n"
        ",,,,\n"
        f"{ID},,X,07/03/1950,12ab\n"
    )
    good, errors = read_roster(text)
    assert [(line, v["bank_account"]) for line, v in good] == [(2, "6222021234567890")]
    assert [(e.line, e.field) for e in errors] == [
        (3, "id_number"),
        (5, "name"),
        (5, "sex"),
        (5, "birth_date"),
        (5, "bank_account"),
    ]
    assert (
        str(errors[3])
        == "line 5, field birth_date: '07/03/1950' is not a date (write it as YYYY-MM-DD)"
    )


def test_roster_extra_values_are_an_error() -> None:
    _good, errors = read_roster(f"id_number,name,sex,birth_date\n{ID},Wang,F,1950-03-07,extra\n")
    assert [(e.line, e.field) for e in errors] == [(2, "*")]


def test_device_trust_follows_folder_and_crl(central_pki: CentralPki) -> None:
    now = [0.0]
    trust = DeviceTrust(
        central_pki.ca_file,
        central_pki.crl_file,
        central_pki.devices_dir,
        check_interval_s=1.0,
        clock=lambda: now[0],
    )
    assert len(trust) == 0
    term = central_pki.terminal("term-0001")
    now[0] = 0.5  # a miss re-checks sooner than the interval
    device = trust.by_kid(term.kid)
    assert device is not None and device.device_id == "term-0001"
    utc = dt.datetime.now(dt.UTC)
    assert device.standing(trust.revoked, utc) is Standing.TRUSTED
    central_pki.revoke(term)
    now[0] = 0.9
    assert trust.by_kid(term.kid) is not None and not trust.revoked  # not yet re-checked
    now[0] = 1.6
    assert device.standing(trust.revoked, utc) is Standing.TRUSTED
    trust.refresh()
    assert device.standing(trust.revoked, utc) is Standing.REVOKED
    assert device.standing(frozenset(), utc + dt.timedelta(days=31)) is Standing.EXPIRED


def test_device_trust_skips_bad_certificates(central_pki: CentralPki, tmp_path: Path) -> None:
    other = CentralPki.create(tmp_path / "other")
    stranger = other.terminal("term-0009")  # signed by another CA
    (central_pki.devices_dir / "term-0009.pem").write_bytes(
        (other.devices_dir / "term-0009.pem").read_bytes()
    )
    good = central_pki.terminal("term-0001")
    (central_pki.devices_dir / "term-0002.pem").write_bytes(
        (central_pki.devices_dir / "term-0001.pem").read_bytes()  # CN != file name
    )
    (central_pki.devices_dir / "junk.pem").write_text("not a certificate")
    trust = DeviceTrust(central_pki.ca_file, central_pki.crl_file, central_pki.devices_dir)
    assert len(trust) == 1 and trust.by_kid(good.kid) is not None
    assert trust.by_kid(stranger.kid) is None and not trust.is_enrolled("term-0002")


def test_crl_not_signed_by_the_ca_is_refused(central_pki: CentralPki, tmp_path: Path) -> None:
    other = CentralPki.create(tmp_path / "other")
    central_pki.crl_file.write_bytes(other.crl_file.read_bytes())
    with pytest.raises(ConfigError, match=r"fleet\.crl_file"):
        DeviceTrust(central_pki.ca_file, central_pki.crl_file, central_pki.devices_dir)


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = [(prefix or "lifecert-central", group)]
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            out += _commands(cmd, f"{prefix} {name}".strip())
        else:
            out.append((f"{prefix} {name}".strip(), cmd))
    return out


@pytest.mark.parametrize(("name", "command"), _commands(main))
def test_every_command_help_has_an_example(name: str, command: click.Command) -> None:
    assert command.help and "Example:" in command.help, name
    assert "lifecert-central" in command.help.split("Example:")[1], name


def test_webhook_secret_command_writes_a_private_secret_once(tmp_path: Path) -> None:
    path = tmp_path / "webhook.secret"
    made = CliRunner().invoke(main, ["notify", "webhook-secret", str(path)])
    assert made.exit_code == 0, made.output
    secret = path.read_text().strip()
    assert path.stat().st_mode & 0o777 == 0o600 and secret not in made.output
    assert signature.read_secret(path, "alerts.webhook_secret_file") == secret
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    again = CliRunner().invoke(main, ["notify", "webhook-secret", str(path)])
    assert again.exit_code == 1 and "exists" in again.output
    assert path.read_text().strip() == secret  # kept, not overwritten
    other = tmp_path / "other.secret"
    assert CliRunner().invoke(main, ["notify", "webhook-secret", str(other)]).exit_code == 0
    assert other.read_text() != path.read_text()
