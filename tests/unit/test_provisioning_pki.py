"""The fleet PKI: chains verify, usages are right, the CRL lists revoked serials."""

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from protocol import signing
from provisioning import pki, registry
from provisioning.fleet import Fleet


def _eku(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_ca_is_a_p256_ca_that_signs_only_leaves(fleet: Fleet) -> None:
    ca = pki.load_cert(fleet.paths.ca_cert)
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"
    assert ca.signature_hash_algorithm is not None
    assert ca.signature_hash_algorithm.name == "sha256"
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    ca.verify_directly_issued_by(ca)
    assert ca.not_valid_after_utc - ca.not_valid_before_utc > dt.timedelta(days=3000)


def test_device_cert_chains_to_the_ca_for_client_auth(fleet: Fleet) -> None:
    bundle = fleet.enrol("term-0001").bundle
    device = pki.load_cert(bundle / "device.pem")
    ca = pki.load_cert(bundle / "ca.pem")
    assert pki.common_name(device) == "term-0001"
    assert _eku(device) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not device.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    verifier = PolicyBuilder().store(Store([ca])).build_client_verifier()
    verified = verifier.verify(device, [])
    assert verified.chain[-1] == ca
    key = signing.load_private_key(bundle / "device.key")
    assert key.public_key() == device.public_key()


def test_a_cert_from_another_ca_does_not_chain(fleet: Fleet, tmp_path: Path) -> None:
    other = Fleet.create(tmp_path / "other", "other", broker_port=18999)
    stranger = pki.load_cert(other.enrol("term-0001").bundle / "device.pem")
    verifier = (
        PolicyBuilder().store(Store([pki.load_cert(fleet.paths.ca_cert)])).build_client_verifier()
    )
    with pytest.raises(VerificationError):
        verifier.verify(stranger, [])


def test_broker_cert_names_its_hosts_and_serves(tmp_path: Path) -> None:
    made = Fleet.create(
        tmp_path / "f", "f", broker_host="mqtt.example.org", extra_hosts=("10.0.0.5",)
    )
    server = pki.load_cert(made.paths.broker / "server.pem")
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"mqtt.example.org", "localhost"}
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"10.0.0.5", "127.0.0.1"}
    assert ExtendedKeyUsageOID.SERVER_AUTH in _eku(server)
    server.verify_directly_issued_by(pki.load_cert(made.paths.ca_cert))


def test_central_has_a_client_cert_and_separate_sign_and_seal_keys(fleet: Fleet) -> None:
    client = pki.load_cert(fleet.paths.central / "client.pem")
    assert pki.common_name(client) == "lifecert-central"
    assert _eku(client) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    sign = signing.load_private_key(fleet.paths.central / "sign.key")
    seal = signing.load_private_key(fleet.paths.central / "seal.key")
    model = signing.load_private_key(fleet.paths.models / "sign.key")
    publics = {signing.key_fingerprint(k.public_key()) for k in (sign, seal, model)}
    assert len(publics) == 3
    assert signing.load_public_key(fleet.paths.central / "sign.pub.pem") == sign.public_key()
    assert signing.load_public_key(fleet.paths.central / "seal.pub.pem") == seal.public_key()


def test_private_keys_are_owner_only(fleet: Fleet) -> None:
    fleet.enrol("term-0001")
    keys = list(fleet.directory.rglob("*.key")) + list(fleet.directory.rglob("*.password"))
    # ca; central sign, seal, client, broker password, rollout bundle server; models; broker,
    # admin (+ password), renewal service (+ password); device (+ password)
    assert len(keys) == 14
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_crl_lists_revoked_serials_and_is_signed_by_the_ca(fleet: Fleet) -> None:
    first = pki.load_crl(fleet.paths.crl)
    assert len(first) == 0 and pki.crl_number(first) == 1
    kept = fleet.enrol("term-0001").record
    gone = fleet.enrol("term-0002").record
    fleet.revoke("term-0002", "stolen")
    crl = pki.load_crl(fleet.paths.crl)
    ca = pki.load_cert(fleet.paths.ca_cert)
    assert crl.is_signature_valid(ca.public_key())
    assert crl.get_revoked_certificate_by_serial_number(int(gone.serial, 16)) is not None
    assert crl.get_revoked_certificate_by_serial_number(int(kept.serial, 16)) is None
    assert pki.crl_number(crl) == 2
    assert crl.next_update_utc is not None
    now = dt.datetime.now(dt.UTC)
    assert crl.last_update_utc <= now < crl.next_update_utc
    assert crl.next_update_utc - now > dt.timedelta(days=fleet.settings.pki.crl_days - 1)


def test_the_crl_lists_replaced_certificates_until_their_margin_past_expiry() -> None:
    now = dt.datetime(2030, 1, 10, tzinfo=dt.UTC)
    day, keep = dt.timedelta(days=1), dt.timedelta(days=7)

    def old(serial: str, not_after: dt.datetime | None) -> registry.OldCert:
        return registry.OldCert(serial=serial, fingerprint="f", revoked_at=now, not_after=not_after)

    active = registry.DeviceRecord(
        id="term-a",
        serial="a0",
        fingerprint="f",
        enrolled_at=now,
        not_after=now + day,
        superseded=[old("a1", now - keep - day), old("a2", now - keep), old("a3", None)],
    )
    revoked = registry.DeviceRecord(
        id="term-b",
        serial="b0",
        fingerprint="f",
        status="revoked",
        revoked_at=now,
        enrolled_at=now,
        not_after=now - 400 * day,  # its own certificate: listed for good
        renewal=registry.PendingCert(
            serial="b1",
            fingerprint="f",
            not_after=now - keep - day,  # a pending renewal: like a replaced one
            request_id="r",
            issued_at=now,
        ),
    )
    listed = registry.Registry(devices=[active, revoked]).revoked_serials(now, keep)
    assert sorted(format(serial, "x") for serial, _ in listed) == ["a2", "a3", "b0"]


def test_refresh_keeps_revocations_and_moves_next_update(fleet: Fleet) -> None:
    gone = fleet.enrol("term-0002").record
    fleet.revoke("term-0002")
    crl = fleet.refresh_crl()
    assert crl.get_revoked_certificate_by_serial_number(int(gone.serial, 16)) is not None
    assert pki.crl_number(crl) == 3


def test_client_certs_name_themselves_in_a_san_uri(fleet: Fleet) -> None:
    device = pki.load_cert(fleet.enrol("term-0001").bundle / "device.pem")
    san = device.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:lifecert:term-0001"]
