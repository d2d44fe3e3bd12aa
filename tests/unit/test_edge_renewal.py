"""The terminal's renewal state machine and its switch, with a real fleet and CA, no broker.

A hand-written link fake carries messages between the terminal's :class:`Renewer` and
the fleet's :class:`Renewals` (what the MQTT topics would carry). Power cuts are files
left half-way, as a kill -9 between two renames leaves them.
"""

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from common.errors import ConfigError
from edge import config as edge_config
from edge import renewal
from edge.adapters import cache
from edge.adapters import keys as edge_keys
from edge.adapters.cache import TemplateCache
from edge.enrolment import key_pem
from edge.fleet import agent
from edge.service import EdgeService
from protocol import fleet as protocol_fleet
from protocol import signing, topics
from provisioning import pki
from provisioning import renewal as fleet_renewal
from provisioning.fleet import Fleet

DEVICE = "term-rn01"


class FakeLink:
    """Records what the terminal publishes; ``connected`` as the test says."""

    def __init__(self) -> None:
        self.connected = True
        self.sent: list[str] = []
        self.reconnects = 0

    def publish_csr(self, jws: str) -> bool:
        self.sent.append(jws)
        return True

    def reconnect(self) -> None:
        self.reconnects += 1


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    made = Fleet.create(tmp_path / "fleet", "t", broker_port=1)  # no broker: files only
    made.enrol(DEVICE)
    return made


def _config(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> edge_config.EdgeConfig:
    monkeypatch.setenv("LIFECERT_EDGE__RENEWAL__BEFORE_DAYS", "2000")
    monkeypatch.setenv("LIFECERT_EDGE__RENEWAL__RETRY_S", "0.01")
    return edge_config.load(fleet.paths.bundle(DEVICE) / "edge.toml")


def _fingerprint(path: Path) -> str:
    return signing.cert_fingerprint(x509.load_pem_x509_certificate(path.read_bytes()))


def test_a_whole_renewal_through_the_fleets_service(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _config(fleet, monkeypatch)
    keys = edge_keys.load(cfg)
    old_kid = keys.signer.kid
    renewer, link = renewal.Renewer(cfg, keys.signer), FakeLink()
    old_key = signing.load_private_key(renewal.files(cfg).key)
    with TemplateCache(cfg.db_path, cache.key_for(cfg.data_dir, old_key)) as kept:
        kept.put("110105195001010011", "vein", b"vein template enrolled here")
    service = fleet_renewal.Renewals(fleet)
    csr_topic = topics.device_topic(DEVICE, "csr")

    renewer.step(link, undelivered=lambda: 0)
    assert renewer.stage() == "requested" and len(link.sent) == 1
    forged = signing.Signer(ec.generate_private_key(ec.SECP256R1()), "0" * 64)
    renewer.on_cert(forged.sign(b'{"v":1,"device_id":"term-rn01","request_id":"x"}'))
    renewer.step(link, undelivered=lambda: 0)  # a reply not signed by the CA changes nothing
    assert renewer.stage() == "requested" and link.reconnects == 0

    answer = service.handle(csr_topic, link.sent[-1].encode())
    assert answer.reply is not None
    renewer.on_cert(answer.reply.encode())
    renewer.step(link, undelivered=lambda: 3)
    assert link.reconnects == 1 and renewer.stage() == "installed"
    assert keys.signer.sign(b"x") and keys.signer.kid != old_kid  # signs with the new key now
    new_key = signing.load_private_key(renewal.files(cfg).key)
    assert isinstance(keys.signer, edge_keys.DeviceSigner)
    assert keys.signer.private_keys()[1].private_numbers() == old_key.private_numbers()
    with TemplateCache(cfg.db_path, cache.key_for(cfg.data_dir, new_key)) as reopened:
        assert reopened.get("110105195001010011", "vein") == b"vein template enrolled here"
    sent = len(link.sent)
    renewer.step(link, undelivered=lambda: 3)  # results signed with the old key still out: wait
    assert len(link.sent) == sent
    renewer.step(link, undelivered=lambda: 0)
    done = service.handle(csr_topic, link.sent[-1].encode())
    assert done.reload and done.reply is not None
    renewer.on_cert(done.reply.encode())
    renewer.step(link, undelivered=lambda: 0)
    assert renewer.stage() == "idle"
    record = fleet.devices()[0]
    assert record.fingerprint == keys.signer.kid
    assert [o.fingerprint for o in record.superseded] == [old_kid]
    assert fleet.paths.devices.joinpath(f"{DEVICE}.pem").exists()
    assert _fingerprint(fleet.paths.devices / f"{DEVICE}.{record.superseded[0].serial}.pem") == (
        old_kid
    )


def _renewed_pair(fleet: Fleet) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    return key, fleet_renewal.issue(fleet, DEVICE, "req-00000001", key.public_key())


@pytest.mark.parametrize("cut", ["before the renames", "between the renames"])
def test_a_power_cut_mid_switch_is_finished_at_start(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, cut: str
) -> None:
    cfg = _config(fleet, monkeypatch)
    files = renewal.files(cfg)
    key, cert = _renewed_pair(fleet)
    signer = edge_keys.load(cfg).signer
    old_kid = signer.kid
    files.next_key.write_bytes(key_pem(key))
    files.next_cert.write_text(pki.pem(cert))
    if cut == "between the renames":
        files.next_key.replace(files.key)
        assert signer.sign(b"x") and signer.kid == old_kid  # a mismatched pair: keep the old
        with pytest.raises(ConfigError, match="does not belong"):
            edge_keys.load(cfg)
    assert renewal.recover(cfg) is not None
    assert not files.next_cert.exists() and not files.next_key.exists()
    assert edge_keys.load(cfg).signer.kid == signing.cert_fingerprint(cert) != old_kid
    assert renewal.recover(cfg) is None  # nothing left to do


def test_a_stray_certificate_for_no_key_here_is_dropped(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _config(fleet, monkeypatch)
    files = renewal.files(cfg)
    before = files.cert.read_bytes()
    _key, cert = _renewed_pair(fleet)
    files.next_cert.write_text(pki.pem(cert))
    assert "matches no key" in (renewal.recover(cfg) or "")
    assert files.cert.read_bytes() == before and not files.next_cert.exists()


def test_centrals_renew_command_starts_a_renewal(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIFECERT_EDGE__RENEWAL__BEFORE_DAYS", "0")  # never due by age
    monkeypatch.setattr(agent, "ACTIONS", {})  # the service installs its action here
    service = EdgeService(edge_config.load(fleet.paths.bundle(DEVICE) / "edge.toml"))
    run = agent.ACTIONS[protocol_fleet.Action.RENEW_CERTIFICATE]
    assert not service.renewer.due()
    status, detail = run(None)  # type: ignore[arg-type]  # the command's content is not used
    assert status is protocol_fleet.AckStatus.DONE and "renewal started" in detail
    assert service.renewer.due()
