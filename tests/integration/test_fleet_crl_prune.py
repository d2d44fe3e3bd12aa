"""The CRL drops certificates renewals replaced once they have expired (RFC 5280 5.1.2.6).

Real certificates from the fleet's CA, real renewals (``provisioning.renewal``) and a real
Mosquitto. A terminal "enrolled long ago" gets a certificate for its key that the CA
signed with a validity already past (what the years would have made); the registry stays
the record of every revocation, only the CRL gets shorter.
"""

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from protocol.signing import cert_fingerprint
from provisioning import pki, registry, renewal
from provisioning.fleet import Fleet
from tests.fixtures.broker import FleetBroker, tls_refusal

pytestmark = pytest.mark.integration

OLD, RECENT, LIVE, LOST = "term-old", "term-recent", "term-live", "term-lost"


def _expired(fleet: Fleet, device_id: str, days_ago: int) -> None:
    """Give ``device_id`` (same key) a CA-signed certificate that expired ``days_ago`` days
    ago, in its bundle, the devices folder and the registry."""
    ca, bundle = fleet.authority(), fleet.paths.bundle(device_id)
    current = pki.load_cert(bundle / "device.pem")
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(current.subject)
        .issuer_name(ca.cert.subject)
        .public_key(current.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=400))
        .not_valid_after(now - dt.timedelta(days=days_ago))
    )
    for ext in current.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    cert = builder.sign(ca.key, hashes.SHA256())
    for path in (bundle / "device.pem", fleet.paths.devices / f"{device_id}.pem"):
        pki.write_cert(path, cert)
    with registry.locked(fleet.paths.registry) as reg:
        record = reg.get(device_id)
        assert record is not None
        record.serial, record.fingerprint = format(cert.serial_number, "x"), cert_fingerprint(cert)
        record.not_after = cert.not_valid_after_utc


def _renew(fleet: Fleet, device_id: str, keep: Path) -> int:
    """Renew ``device_id`` onto a new key (a copy of its old bundle left in ``keep``); the
    replaced serial."""
    shutil.copytree(fleet.paths.bundle(device_id), keep)
    renewal.issue(fleet, device_id, f"req-{device_id}", pki.new_key().public_key())
    return int(renewal.finish(fleet, device_id, f"req-{device_id}").serial, 16)


def _listed(fleet: Fleet, serial: int) -> bool:
    return (
        pki.load_crl(fleet.paths.crl).get_revoked_certificate_by_serial_number(serial) is not None
    )


def test_expired_replaced_certificates_leave_the_crl_revoked_ones_stay_refused(
    fleet: Fleet, broker: FleetBroker, tmp_path: Path
) -> None:
    for device_id in (OLD, RECENT, LIVE, LOST):
        fleet.enrol(device_id)
    _expired(fleet, OLD, days_ago=10)  # past the 7-day margin
    _expired(fleet, RECENT, days_ago=3)  # inside it
    _expired(fleet, LOST, days_ago=10)
    old, recent, live = (_renew(fleet, d, tmp_path / d) for d in (OLD, RECENT, LIVE))
    lost = int(fleet.revoke(LOST, "stolen").serial, 16)
    broker.reload()

    assert not _listed(fleet, old)
    assert _listed(fleet, recent) and _listed(fleet, live)
    assert _listed(fleet, lost)  # a revoked device's own certificate stays for good
    assert len(pki.load_crl(fleet.paths.crl)) == 3
    kept = registry.read(fleet.paths.registry)
    assert [int(o.serial, 16) for o in kept.by_id()[OLD].superseded] == [old]  # still on record

    refusal = tls_refusal(broker.port, tmp_path / OLD)
    assert refusal is not None and "certificate expired" in refusal, refusal
    refusal = tls_refusal(broker.port, tmp_path / LIVE)
    assert refusal is not None and "certificate revoked" in refusal, refusal


def _forget_expiry(fleet: Fleet) -> None:
    """Drop the first device's replaced certificate's ``not_after`` from ``registry.json``,
    as a registry written before expiries were recorded has it."""
    data = json.loads(fleet.paths.registry.read_text())
    (entry,) = data["devices"][0]["superseded"]
    del entry["not_after"]
    fleet.paths.registry.write_text(json.dumps(data))


def test_an_old_registrys_entry_learns_its_expiry_from_the_kept_certificate(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.enrol(OLD)
    _expired(fleet, OLD, days_ago=30)
    old = _renew(fleet, OLD, tmp_path / OLD)
    _forget_expiry(fleet)
    fleet.refresh_crl()
    assert not _listed(fleet, old)
    (entry,) = registry.read(fleet.paths.registry).by_id()[OLD].superseded
    assert entry.not_after is not None and entry.not_after < dt.datetime.now(dt.UTC)


def test_an_entry_of_unknown_expiry_stays(fleet: Fleet, tmp_path: Path) -> None:
    fleet.enrol(OLD)
    _expired(fleet, OLD, days_ago=30)
    old = _renew(fleet, OLD, tmp_path / OLD)
    assert not _listed(fleet, old)
    _forget_expiry(fleet)
    kept = fleet.paths.devices / f"{OLD}.{old:x}.pem"
    kept.write_bytes((fleet.paths.devices / f"{OLD}.pem").read_bytes())  # another certificate
    fleet.refresh_crl()
    assert _listed(fleet, old)
    kept.unlink()  # no file at all
    fleet.refresh_crl()
    assert _listed(fleet, old)


def test_the_margin_is_a_setting(fleet: Fleet, tmp_path: Path) -> None:
    config = fleet.paths.config
    config.write_text(config.read_text() + "\n[pki]\ncrl_keep_expired_days = 0\n")
    fleet = Fleet.open(fleet.directory)
    fleet.enrol(RECENT)
    _expired(fleet, RECENT, days_ago=1)
    assert not _listed(fleet, _renew(fleet, RECENT, tmp_path / RECENT))
