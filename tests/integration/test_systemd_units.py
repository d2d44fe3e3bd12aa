"""The unit files pass `systemd-analyze verify` and carry the settings operations rely on."""

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"
SERVICES = sorted(UNITS.glob("*.service"))
TIMERS = sorted([*UNITS.glob("*.timer"), *UNITS.glob("*.path")])
ONESHOTS = {"lifecert-crl.service", "lifecert-crl-reload.service"}
DATA_DIR = "/var/lib/lifecert"
SOFTWARE_CURRENT = f"{DATA_DIR}/software/current"


def _parse(unit: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(unit.read_text())
    return parser


@pytest.fixture(scope="module")
def verify_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Copies of the units whose executables point at this machine's installed commands."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed: `apt-get install systemd` (make setup does)")
    out = tmp_path_factory.mktemp("units")
    bindir = Path(sys.executable).parent
    for unit in [*SERVICES, *TIMERS]:
        text = unit.read_text()
        for command in ("lifecert-edge", "lifecert-central", "lifecert-kiosk", "lifecert"):
            found = shutil.which(command) or str(bindir / command)
            text = text.replace(f"/usr/local/bin/{command}", found)
            text = text.replace(f"{SOFTWARE_CURRENT}/bin/{command}", found)
        (out / unit.name).write_text(text)
    return out


def test_units_exist() -> None:
    names = {u.name for u in SERVICES}
    assert {"lifecert-edge.service", "lifecert-central.service"} <= names


@pytest.mark.parametrize("unit", [*SERVICES, *TIMERS], ids=lambda u: u.name)
def test_systemd_analyze_verify_is_silent(verify_dir: Path, unit: Path) -> None:
    name = unit.name.replace("@.service", "@1.service")
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(verify_dir / name)],
        capture_output=True,
        text=True,
        cwd=verify_dir,
        timeout=60,
        check=False,
    )
    ours = [line for line in proc.stderr.splitlines() if "lifecert" in line]
    assert proc.returncode == 0 and not ours, proc.stderr


@pytest.mark.parametrize(
    "unit",
    [u for u in SERVICES if "kiosk" not in u.name and u.name not in ONESHOTS],
    ids=lambda u: u.name,
)
def test_services_are_notify_with_watchdog_restart_and_hardening(unit: Path) -> None:
    service = _parse(unit)["Service"]
    assert service["Type"] == "notify"
    assert int(service["WatchdogSec"]) > 0
    assert service["Restart"] == "on-failure"
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes"
    assert service["User"] != "root"
    assert "--validate-config" in service["ExecStartPre"]


def test_the_terminal_starts_the_software_release_current_points_at() -> None:
    """Software rollouts switch ``<data_dir>/software/current``: ExecStart goes through it."""
    service = _parse(UNITS / "lifecert-edge.service")["Service"]
    assert service["ExecStart"].startswith(f"{SOFTWARE_CURRENT}/bin/lifecert-edge ")
    assert service["ExecStartPre"].startswith(f"{SOFTWARE_CURRENT}/bin/lifecert-edge ")
    assert service["Environment"] == f"LIFECERT_EDGE__DATA_DIR={DATA_DIR}"


def test_bad_unit_is_caught(verify_dir: Path) -> None:
    """The verify check can fail: a broken copy is reported."""
    bad = verify_dir / "lifecert-broken.service"
    bad.write_text((verify_dir / "lifecert-edge.service").read_text().replace("notify", "notfy"))
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "notfy" in proc.stderr


def test_crl_timer_runs_the_renewal_daily_and_catches_up() -> None:
    timer = _parse(UNITS / "lifecert-crl.timer")
    assert timer["Timer"]["Unit"] == "lifecert-crl.service"
    assert timer["Timer"]["OnCalendar"] == "daily"
    assert timer["Timer"]["Persistent"] == "true"
    service = _parse(UNITS / "lifecert-crl.service")["Service"]
    assert service["Type"] == "oneshot"
    assert "fleet crl --renew-if-due" in service["ExecStart"]
    path = _parse(UNITS / "lifecert-crl-reload.path")["Path"]  # any CRL change reloads the broker
    assert path["PathChanged"].endswith("/ca/crl.pem")
    assert path["Unit"] == "lifecert-crl-reload.service"
    reload = _parse(UNITS / "lifecert-crl-reload.service")["Service"]
    assert "reload" in reload["ExecStart"] and "mosquitto" in reload["ExecStart"]
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes"
    assert service["User"] != "root"
