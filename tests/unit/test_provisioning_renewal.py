"""The renewal service's batches, with a real fleet and CA, no broker: each message is
verified and answered on its own, the batch is written once, and a crash after the
registry write (renewed certificates not yet moved in place, as a kill -9 leaves them) is
completed at the service's start."""

import datetime as dt
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from edge.enrolment import make_csr
from protocol import enrolment, signing, topics
from protocol.enrolment import RenewalReply
from provisioning import pki, registry
from provisioning.fleet import Fleet
from provisioning.renewal import Outcome, Renewals, repair

A, B = "term-batch1", "term-batch2"


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    made = Fleet.create(tmp_path / "fleet", "t", broker_port=1)  # no broker: files only
    made.enrol(A)
    made.enrol(B)
    return made


def _signer(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> signing.Signer:
    return signing.Signer(key, signing.cert_fingerprint(cert))


def _current(fleet: Fleet, device_id: str) -> signing.Signer:
    bundle = fleet.paths.bundle(device_id)
    key = signing.load_private_key(bundle / "device.key")
    return _signer(key, pki.load_cert(bundle / "device.pem"))


def _ask(by: signing.Signer, device_id: str, key: ec.EllipticCurvePrivateKey) -> tuple[str, bytes]:
    body = enrolment.RenewalRequest(
        device_id=device_id,
        request_id=f"req-{device_id}",
        csr=make_csr(key, device_id),
        sent_at=dt.datetime.now(dt.UTC),
    )
    return topics.device_topic(device_id, "csr"), by.sign(body.model_dump_json().encode()).encode()


def _done(by: signing.Signer, device_id: str, request_id: str = "") -> tuple[str, bytes]:
    body = enrolment.RenewalDone(device_id=device_id, request_id=request_id or f"req-{device_id}")
    return topics.device_topic(device_id, "csr"), by.sign(body.model_dump_json().encode()).encode()


def _read(fleet: Fleet, outcome: Outcome) -> RenewalReply:
    assert outcome.reply is not None
    ca = fleet.authority().cert.public_key()
    assert isinstance(ca, ec.EllipticCurvePublicKey)
    return RenewalReply.model_validate_json(signing.Verifier(ca).verify(outcome.reply.encode()))


def _record(fleet: Fleet, device_id: str) -> registry.DeviceRecord:
    found = registry.read(fleet.paths.registry).get(device_id)
    assert found is not None
    return found


def test_each_message_of_a_batch_is_verified_and_answered_on_its_own(fleet: Fleet) -> None:
    renewals, new_a, new_b = (
        Renewals(fleet),
        *(ec.generate_private_key(ec.SECP256R1()) for _ in "ab"),
    )
    stranger = _signer(new_b, pki.load_cert(fleet.paths.bundle(A) / "device.pem"))
    ask_a = _ask(_current(fleet, A), A, new_a)
    outcomes = renewals.handle_batch(
        [
            ask_a,
            _ask(stranger, A, new_b),  # A's kid, a key A does not hold: dropped
            _done(_current(fleet, B), B),  # confirms nothing pending, with the old key
            ask_a,  # the same request again: the same certificate
            _ask(_current(fleet, B), B, new_b),
        ]
    )
    first, forged, early, again, b = outcomes
    assert forged.reply is None
    assert "renewed certificate's key" in (_read(fleet, early).error or "")
    assert _read(fleet, first).certificate == _read(fleet, again).certificate is not None
    assert _read(fleet, b).certificate is not None and not any(o.reload for o in outcomes)

    certs = {d: x509.load_pem_x509_certificate((_read(fleet, o).certificate or "").encode())
             for d, o in ((A, first), (B, b))}  # fmt: skip
    old = {d: _record(fleet, d).serial for d in (A, B)}
    done = renewals.handle_batch(
        [_done(_signer(new_a, certs[A]), A), _done(_signer(new_b, certs[B]), B, "req-nope")]
    )
    assert _read(fleet, done[0]).finished and done[0].reload
    assert "no renewal req-nope is pending" in (_read(fleet, done[1]).error or "")
    crl = {r.serial_number for r in pki.load_crl(fleet.paths.crl)}
    assert int(old[A], 16) in crl and int(old[B], 16) not in crl
    assert _record(fleet, B).renewal is not None and _record(fleet, B).serial == old[B]
    on_disk = pki.load_cert(fleet.paths.devices / f"{A}.pem")
    assert on_disk == certs[A] and _record(fleet, A).fingerprint == signing.cert_fingerprint(
        on_disk
    )
    assert not (fleet.paths.devices / f"{A}.{_record(fleet, A).serial}.pem").exists()
    assert pki.load_cert(fleet.paths.devices / f"{A}.{old[A]}.pem").serial_number == int(old[A], 16)


def test_a_crash_before_the_renewed_certificate_is_moved_is_completed_at_start(
    fleet: Fleet,
) -> None:
    renewals, new = Renewals(fleet), ec.generate_private_key(ec.SECP256R1())
    issued = _read(fleet, renewals.handle(*_ask(_current(fleet, A), A, new)))
    cert = x509.load_pem_x509_certificate((issued.certificate or "").encode())
    old = _record(fleet, A).serial
    assert _read(fleet, renewals.handle(*_done(_signer(new, cert), A))).finished
    devices = fleet.paths.devices
    serial = _record(fleet, A).serial
    # the registry was written, the renewed certificate not yet moved to <id>.pem
    (devices / f"{A}.pem").replace(devices / f"{A}.{serial}.pem")
    shutil.copy(devices / f"{A}.{old}.pem", devices / f"{A}.pem")
    again = _ask(_signer(new, cert), A, ec.generate_private_key(ec.SECP256R1()))
    assert renewals.handle(*again).reply is None  # <id>.pem does not match the registry

    assert repair(fleet) == [A] and repair(fleet) == []
    assert pki.load_cert(devices / f"{A}.pem") == cert
    assert not (devices / f"{A}.{serial}.pem").exists()
    assert _read(fleet, renewals.handle(*again)).certificate is not None
