"""Certificate renewal over MQTT with a key made on the terminal, end to end.

Real processes: Mosquitto (restarted mid-renewal), ``lifecert fleet renewal-service``,
``lifecert-central run`` and ``lifecert-edge run``. Results signed with the old key
before the switch and with the new key after it are all applied, none quarantined; the
old certificate is revoked only once the terminal runs on the new one.
"""

import contextlib
import datetime as dt
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from central.certification.devices import DeviceTrust, Standing
from central.cli import main as central_main
from central.store import schema
from common import idnumber
from edge.enrolment import make_csr
from protocol import enrolment, signing, topics
from protocol.enrolment import RenewalReply
from provisioning import pki, registry
from provisioning.fleet import Fleet
from provisioning.renewal import Renewals
from provisioning.stack import Stack
from tests.fixtures.broker import FleetBroker, MqttPeer, tls_refusal
from tests.fixtures.database import known_staff
from tests.fixtures.ports import free_port
from tests.fixtures.stack import central_url, count, record, synthetic_retirees
from tests.fixtures.waiting import wait_until
from tests.integration.test_fleet_claim_enrolment import csr_with

pytestmark = pytest.mark.integration

A, B = "term-renew1", "term-renew2"
REPO = Path(__file__).resolve().parents[2]
RENEW_NOW = {
    "LIFECERT_EDGE__RENEWAL__BEFORE_DAYS": "2000",  # the enrolled certificate (1095 d) is due
    "LIFECERT_EDGE__RENEWAL__RETRY_S": "1",
    "LIFECERT_EDGE__LINK__RECONNECT_MAX_S": "2",
    "LIFECERT_EDGE__OUTBOX__ACK_TIMEOUT_S": "3",
    "LIFECERT_EDGE__OUTBOX__BACKOFF_MAX_S": "6",
}


@dataclass
class Built:
    """A stack (fleet, broker, central, terminals) and the renewal service, when started."""

    stack: Stack
    ids: list[str]
    service: subprocess.Popen[bytes] | None = None

    def start_renewal_service(self) -> None:
        """``lifecert fleet renewal-service`` as its own process."""
        log = (self.stack.logs / "renewal.log").open("ab")
        self.service = subprocess.Popen(
            [sys.executable, "-m", "provisioning", "fleet", "renewal-service",
             "--dir", str(self.stack.fleet.directory)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _migrate_with_retirees(config: Path, n: int) -> list[str]:
    """Central's database migrated in-process, with ``n`` retirees to certify; their ids."""
    done = CliRunner().invoke(central_main, ["--config", str(config), "db", "upgrade"])
    assert done.exit_code == 0, done.output
    ids = synthetic_retirees(n)
    now = dt.datetime.now(dt.UTC)
    engine = sa.create_engine(f"sqlite:///{config.parent / 'central.sqlite'}")
    with engine.begin() as conn:
        conn.execute(
            sa.insert(schema.retirees),
            [
                {"id_number": p, "name": f"R {i}", "sex": idnumber.sex(p),
                 "birth_date": idnumber.birth_date(p), "created_at": now, "updated_at": now}
                for i, p in enumerate(ids)
            ],
        )  # fmt: skip
    known_staff(engine, "desk-1")  # the staff member ``record`` names
    engine.dispose()
    return ids


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Built]:
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the processes run this tree's code
    stack = Stack.create(tmp_path, free_port(), [A])
    ids = _migrate_with_retirees(stack.central_config, 5)
    config = stack.fleet.paths.config
    config.write_text(config.read_text() + "\n[pki]\ndevice_days = 3000\n")  # renewed: not due
    stack.broker.pid_file = stack.fleet.settings.broker.pid_file  # the service SIGHUPs it
    made = Built(stack, ids)
    with stack:
        stack.broker.start()
        try:
            yield made
        finally:
            if made.service is not None:
                made.service.terminate()
                made.service.wait(10)


def _record(fleet: Fleet, device_id: str) -> registry.DeviceRecord:
    found = registry.read(fleet.paths.registry).get(device_id)
    assert found is not None
    return found


def test_renewal_across_a_broker_restart_keeps_every_result(built: Built, tmp_path: Path) -> None:
    stack, ids = built.stack, built.ids
    fleet, bundle = stack.fleet, stack.fleet.paths.bundle(A)
    old = tmp_path / "old"  # the first key and certificate, to try them after the renewal
    old.mkdir()
    for name in ("device.pem", "device.key", "ca.pem", "mqtt.password"):
        shutil.copy(bundle / name, old / name)
    first = _record(fleet, A)
    before = record(stack, A, ids, 3)  # signed with the first key, not delivered yet

    stack.start_edge(A, RENEW_NOW)  # asks at once: nobody answers yet
    wait_until((bundle / "var" / "renewal.json").exists, 20, "a renewal request")
    stack.broker.restart()
    built.start_renewal_service()
    wait_until(lambda: _record(fleet, A).renewal is not None, 30, "the renewed certificate")
    wait_until(lambda: not (bundle / "device.key.next").exists(), 20, "the switch")
    assert _record(fleet, A).serial == first.serial  # not revoked while results wait

    stack.start_central()
    after = record(stack, A, ids, 2)  # signed with the new key (read from disk)
    stack.wait_delivered([A], timeout=40)
    wait_until(lambda: _record(fleet, A).serial != first.serial, 20, "the old one revoked")

    now = _record(fleet, A)
    assert now.renewal is None and [o.serial for o in now.superseded] == [first.serial]
    crl = pki.load_crl(fleet.paths.crl)
    assert crl.get_revoked_certificate_by_serial_number(int(first.serial, 16)) is not None
    assert "revoked" in wait_until(lambda: tls_refusal(stack.broker.port, old), 10, "refusal")
    cert = x509.load_pem_x509_certificate((bundle / "device.pem").read_bytes())
    assert format(cert.serial_number, "x") == now.serial
    assert not (bundle / "var" / "renewal.json").exists()

    url = central_url(stack)
    assert count(url, "results") == len(before) + len(after) == 5
    assert count(url, "quarantine") == 0
    trust = DeviceTrust(fleet.paths.ca_cert, fleet.paths.crl, fleet.paths.devices)
    old_device, new_device = trust.by_kid(first.fingerprint), trust.by_kid(now.fingerprint)
    assert old_device is not None and new_device is not None
    assert old_device.standing(trust.revoked, cert.not_valid_before_utc) == Standing.REVOKED
    assert new_device.standing(trust.revoked, cert.not_valid_before_utc) == Standing.TRUSTED
    assert "told the fleet" in stack.log_tail(A, 200)


def test_forged_and_bad_renewals_get_nothing(broker: FleetBroker) -> None:
    fleet, port = broker.fleet, broker.port
    bundle_a, bundle_b = fleet.enrol(A).bundle, fleet.enrol(B).bundle
    with MqttPeer(bundle_b, port) as b:  # B may not write A's csr topic
        assert b.publish(topics.device_topic(A, "csr"), b"x").getName() == "Not authorized"
    with MqttPeer(bundle_b, port) as b:  # nor read A's certificates
        assert b.subscribe(topics.device_topic(A, "cert")).is_failure

    renewals = Renewals(fleet)
    ca_key = fleet.authority().cert.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)

    def signer(bundle: Path, key: ec.EllipticCurvePrivateKey | None = None) -> signing.Signer:
        kid = signing.cert_fingerprint(pki.load_cert(bundle / "device.pem"))
        return signing.Signer(key or signing.load_private_key(bundle / "device.key"), kid)

    def ask(by: signing.Signer, device: str, csr: str, topic_device: str = A) -> str | None:
        body = enrolment.RenewalRequest(
            device_id=device, request_id="req-00000001", csr=csr, sent_at=dt.datetime.now(dt.UTC)
        )
        topic = topics.device_topic(topic_device, "csr")
        out = renewals.handle(topic, by.sign(body.model_dump_json().encode())).reply
        if out is None:
            return None
        reply = enrolment.RenewalReply.model_validate_json(signing.Verifier(ca_key).verify(out))
        return reply.error or "issued"

    new = ec.generate_private_key(ec.SECP256R1())
    # B's key claiming to be A, in the payload or by the topic: dropped without an answer
    assert ask(signer(bundle_b), A, make_csr(new, A)) is None
    assert ask(signer(bundle_b), B, make_csr(new, B), topic_device=A) is None
    # a key the registry does not hold for A, under A's kid: dropped
    assert ask(signer(bundle_a, new), A, make_csr(new, A)) is None
    signer_a = signer(bundle_a)
    assert "CN 'term-renew2' differs" in (ask(signer_a, A, make_csr(new, B)) or "")
    rsa_csr = csr_with(rsa.generate_private_key(65537, 2048), A)
    assert "RSA 2048" in (ask(signer_a, A, rsa_csr) or "")
    assert _record(fleet, A).renewal is None  # nothing issued so far
    assert ask(signer_a, A, make_csr(new, A)) == "issued"
    assert ask(signer_a, A, make_csr(new, A)) == "issued"  # the same request again: same cert
    other = ec.generate_private_key(ec.SECP256R1())
    assert "already used with another key" in (ask(signer_a, A, make_csr(other, A)) or "")
    too_big = b"a" * (enrolment.MAX_RENEWAL_BYTES + 1)
    assert renewals.handle(topics.device_topic(A, "csr"), too_big).reply is None
    assert len(_record(fleet, A).superseded) == 0 and _record(fleet, A).status == "active"


def _service(fleet: Fleet, log: Path) -> subprocess.Popen[bytes]:
    """``lifecert fleet renewal-service`` for ``fleet``, once connected to the broker."""
    connected = (log.read_text() if log.exists() else "").count("renewal service connected") + 1
    service = subprocess.Popen(
        [sys.executable, "-m", "provisioning", "fleet", "renewal-service",
         "--dir", str(fleet.directory)],
        stdout=log.open("ab"), stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    wait_until(lambda: log.read_text().count("renewal service connected") >= connected, 20, "it")
    return service


def _answers(peers: dict[str, MqttPeer], ca: signing.Verifier) -> dict[str, RenewalReply]:
    """The next reply on each terminal's ``cert`` topic."""
    out = {}
    for device_id, peer in peers.items():
        got = peer.expect(30)
        assert got is not None, f"{device_id} got no answer"
        out[device_id] = RenewalReply.model_validate_json(ca.verify(bytes(got.payload)))
    return out


def test_fifty_renewals_at_once_are_answered_in_batches(
    broker: FleetBroker, tmp_path: Path
) -> None:
    fleet, port, log = broker.fleet, broker.port, tmp_path / "renewal.log"
    ids = [f"term-mass{i:02d}" for i in range(50)]
    bundles = {d: fleet.enrol(d).bundle for d in ids}
    first = {d: _record(fleet, d) for d in ids}
    ca_key = fleet.authority().cert.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    ca = signing.Verifier(ca_key)
    _service(fleet, log).terminate()  # its session at the broker keeps what arrives now

    new_keys = {d: ec.generate_private_key(ec.SECP256R1()) for d in ids}
    bad = ids[7]  # asks for another terminal's name: refused, the others unaffected
    with contextlib.ExitStack() as stack:
        peers = {d: stack.enter_context(MqttPeer(bundles[d], port)) for d in ids}
        for d, peer in peers.items():
            assert not peer.subscribe(topics.device_topic(d, "cert")).is_failure
        for d, peer in peers.items():
            body = enrolment.RenewalRequest(
                device_id=d,
                request_id=f"req-{d}",
                csr=make_csr(new_keys[d], ids[8] if d == bad else d),
                sent_at=dt.datetime.now(dt.UTC),
            )
            kid = signing.cert_fingerprint(pki.load_cert(bundles[d] / "device.pem"))
            signer = signing.Signer(signing.load_private_key(bundles[d] / "device.key"), kid)
            assert not peer.publish(
                topics.device_topic(d, "csr"), signer.sign(body.model_dump_json().encode())
            ).is_failure
        service = _service(fleet, log)
        try:
            issued = _answers(peers, ca)
            assert issued[bad].certificate is None
            assert f"CN '{ids[8]}' differs" in (issued[bad].error or "")
            for d in ids:
                if d == bad:
                    continue
                pem = issued[d].certificate
                assert issued[d].error is None and pem is not None
                cert = x509.load_pem_x509_certificate(pem.encode())
                assert cert.public_key() == new_keys[d].public_key()
                assert cert.subject.rfc4514_string().startswith(f"CN={d},")
                done = enrolment.RenewalDone(device_id=d, request_id=f"req-{d}")
                signer = signing.Signer(new_keys[d], signing.cert_fingerprint(cert))
                assert (
                    not peers[d]
                    .publish(
                        topics.device_topic(d, "csr"), signer.sign(done.model_dump_json().encode())
                    )
                    .is_failure
                )
            finished = _answers({d: p for d, p in peers.items() if d != bad}, ca)
            assert all(r.finished and r.error is None for r in finished.values())
        finally:
            service.terminate()
            service.wait(10)

    text = log.read_text()
    assert "renewal batch:" in text  # queued messages were applied together
    assert text.count("sent SIGHUP to mosquitto") < len(ids) - 1  # one reload per batch
    crl = {r.serial_number for r in pki.load_crl(fleet.paths.crl)}
    for d in ids:
        now = _record(fleet, d)
        if d == bad:
            assert now == first[d]
            continue
        assert now.renewal is None and [o.serial for o in now.superseded] == [first[d].serial]
        assert int(first[d].serial, 16) in crl and int(now.serial, 16) not in crl
        current = pki.load_cert(fleet.paths.devices / f"{d}.pem")
        assert signing.cert_fingerprint(current) == now.fingerprint
    refused = wait_until(lambda: tls_refusal(port, bundles[ids[0]]), 10, "refusal")
    assert "revoked" in (refused or "")
