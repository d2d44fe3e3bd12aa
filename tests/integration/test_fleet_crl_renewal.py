"""The CRL timer's command keeps the broker accepting terminals past the old nextUpdate.

Mosquitto (OpenSSL's CRL check) refuses every client certificate once the CRL's
nextUpdate has passed; ``lifecert fleet crl --renew-if-due`` (what
``lifecert-crl.timer`` runs daily) re-issues a CRL that is close to it and
SIGHUPs the broker. The CRLs here live seconds instead of days.
"""

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from provisioning import broker as broker_mod
from provisioning import pki
from provisioning.cli import main
from provisioning.fleet import Fleet
from tests.fixtures.broker import FleetBroker, tls_refusal
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _short_crl(fleet: Fleet, seconds: float) -> dt.datetime:
    """Replace the fleet's CRL by one whose nextUpdate is ``seconds`` from now; that time."""
    ca = fleet.authority()
    now = dt.datetime.now(dt.UTC)
    next_update = now + dt.timedelta(seconds=seconds)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(next_update)
        .add_extension(x509.CRLNumber(pki.crl_number(pki.load_crl(fleet.paths.crl)) + 1), False)
        .sign(ca.key, hashes.SHA256())
    )
    pki.write_crl(fleet.paths.crl, crl)
    return next_update


def _lifecert(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "provisioning", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def _sleep_past(moment: dt.datetime) -> None:
    time.sleep(max(0.0, (moment - dt.datetime.now(dt.UTC)).total_seconds()) + 1.2)


@dataclass
class ShortCrl:
    """A running broker whose CRL expires at ``next_update``, and one terminal's bundle."""

    broker: FleetBroker
    next_update: dt.datetime
    bundle: Path


@pytest.fixture
def short(fleet: Fleet) -> Iterator[ShortCrl]:
    """The fleet's broker, started on a CRL that expires in 2 s."""
    bundle = fleet.enrol("term-crl1").bundle
    next_update = _short_crl(fleet, 2)
    with broker_mod.for_fleet(fleet) as process:
        yield ShortCrl(FleetBroker(fleet, process), next_update, bundle)


def test_renewal_before_next_update_keeps_terminals_connecting(short: ShortCrl) -> None:
    fleet, port = short.broker.fleet, short.broker.port
    assert tls_refusal(port, short.bundle) is None

    done = _lifecert("fleet", "crl", "--renew-if-due", "--dir", str(fleet.directory))
    assert done.returncode == 0, done.stderr
    assert "renewing the CRL: its nextUpdate" in done.stdout
    assert "sent SIGHUP to mosquitto" in done.stdout
    assert pki.load_crl(fleet.paths.crl).next_update_utc > dt.datetime.now(dt.UTC) + dt.timedelta(
        days=80
    )

    _sleep_past(short.next_update)
    assert tls_refusal(port, short.bundle) is None

    again = CliRunner().invoke(
        main, ["fleet", "crl", "--renew-if-due", "--dir", str(fleet.directory)]
    )
    assert again.exit_code == 0 and "not due yet" in again.output, again.output
    assert "SIGHUP" not in again.output


def test_without_renewal_an_expired_crl_locks_every_terminal_out(short: ShortCrl) -> None:
    """What the timer prevents (and that the test above could fail)."""
    port = short.broker.port
    assert tls_refusal(port, short.bundle) is None
    _short_crl(short.broker.fleet, -1)  # nextUpdate just passed
    short.broker.reload()
    refusal = wait_until(lambda: tls_refusal(port, short.bundle), 5, "a refusal")
    assert "expired" in refusal, refusal  # OpenSSL: CRL has expired -> alert "expired"
    args = ["fleet", "crl", "--renew-if-due", "--dir", str(short.broker.fleet_dir)]
    done = CliRunner().invoke(main, args)
    assert "renewing the CRL" in done.output and "passed" in done.output, done.output
    wait_until(lambda: tls_refusal(port, short.bundle) is None, 5, "accepted again")


def test_renew_margin_must_be_inside_the_crl_validity(tmp_path: Path) -> None:
    made = Fleet.create(tmp_path / "f", "t", broker_port=18883)
    text = made.paths.config.read_text() + "\n[pki]\ncrl_days = 30\ncrl_renew_days = 30\n"
    made.paths.config.write_text(text)
    done = _lifecert("fleet", "crl", "--renew-if-due", "--dir", str(made.directory))
    assert done.returncode == 2
    assert "crl_renew_days must be less than crl_days" in done.stderr
    assert "Traceback" not in done.stderr
