"""The fleet directory: layout, bundles, configs that validate, registry, broker config."""

import base64
import hashlib
import json
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from cryptography import x509

from central.certification.devices import DeviceTrust
from common.config import Section, load
from common.errors import ConfigError
from protocol import signing
from protocol.settings import CentralKeys, MqttSettings, read_password
from provisioning import dynsec
from provisioning.brokerconf import BrokerOptions
from provisioning.errors import ProvisioningError
from provisioning.fleet import Fleet

BUNDLE_FILES = {
    "edge.toml",
    "device.pem",
    "device.key",
    "mqtt.password",
    "ca.pem",
    "central-sign.pub.pem",
    "central-seal.pub.pem",
    "models-sign.pub.pem",
}


def test_layout_is_as_the_design_says(fleet: Fleet) -> None:
    root = fleet.directory
    for rel in (
        "fleet.toml",
        "registry.json",
        "ca/ca.pem",
        "ca/ca.key",
        "ca/crl.pem",
        "central/sign.key",
        "central/sign.pub.pem",
        "central/seal.key",
        "central/seal.pub.pem",
        "central/client.pem",
        "central/client.key",
        "central/mqtt.password",
        "central/central.toml",
        "models/sign.key",
        "models/sign.pub.pem",
        "broker/server.pem",
        "broker/server.key",
        "broker/admin.pem",
        "broker/admin.key",
        "broker/admin.password",
        "broker/mosquitto.conf",
        "broker/dynamic-security.json",
    ):
        assert (root / rel).is_file(), rel
    assert (root / "devices").is_dir() and (root / "bundles").is_dir()
    assert Fleet.open(root).settings.name == "test"
    for secret in ("central/mqtt.password", "broker/admin.password", "broker/admin.key"):
        assert stat.S_IMODE((root / secret).stat().st_mode) == 0o600, secret


def test_bundle_holds_exactly_what_the_device_needs(fleet: Fleet) -> None:
    done = fleet.enrol("term-0001")
    assert {p.name for p in done.bundle.iterdir()} == BUNDLE_FILES
    assert (fleet.paths.devices / "term-0001.pem").read_bytes() == (
        done.bundle / "device.pem"
    ).read_bytes()
    assert (done.bundle / "central-sign.pub.pem").read_bytes() == (
        fleet.paths.central / "sign.pub.pem"
    ).read_bytes()


def test_edge_toml_validates_with_the_protocol_sections(fleet: Fleet) -> None:
    bundle = fleet.enrol("term-0001").bundle

    class Edge(Section):
        device_id: str
        data_dir: Path
        log_level: str
        mqtt: MqttSettings
        central: CentralKeys

    edge = load(Edge, bundle / "edge.toml", "LIFECERT_TEST_UNUSED", environ={})
    assert edge.device_id == "term-0001"
    assert edge.mqtt.port == fleet.settings.broker.port
    assert edge.mqtt.tls.key_file == bundle / "device.key"
    assert edge.central.model_sign_pub == bundle / "models-sign.pub.pem"
    for path in (edge.mqtt.tls.ca_file, edge.mqtt.tls.cert_file, edge.central.seal_pub):
        assert path.is_file()
    assert edge.mqtt.password_file == bundle / "mqtt.password"
    assert stat.S_IMODE(edge.mqtt.password_file.stat().st_mode) == 0o600
    password = read_password(edge.mqtt)
    assert password is not None and len(password) >= 43


def test_edge_toml_loads_with_the_edge_schema(fleet: Fleet) -> None:
    edge_config = pytest.importorskip("edge.config")
    bundle = fleet.enrol("term-0001").bundle
    config = edge_config.load(bundle / "edge.toml")
    assert config.device_id == "term-0001"


def test_central_toml_loads_with_the_central_schema(fleet: Fleet) -> None:
    central_config = pytest.importorskip("central.config")
    config = central_config.load(fleet.paths.central / "central.toml", environ={})
    assert config.mqtt.tls.cert_file == fleet.paths.central / "client.pem"
    assert config.mqtt.port == fleet.settings.broker.port
    assert config.mqtt.login() == ("lifecert-central", fleet.central_password())


def test_tar_archive_keeps_the_key_private(fleet: Fleet, tmp_path: Path) -> None:
    fleet.enrol("term-0001")
    archive = fleet.archive("term-0001")
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert {f"term-0001/{n}" for n in BUNDLE_FILES} <= set(members)
        member = members["term-0001/device.key"]
        assert stat.S_IMODE(member.mode) == 0o600 and member.uid == 0
        tar.extractall(tmp_path / "out", filter="data")
    key = signing.load_private_key(tmp_path / "out" / "term-0001" / "device.key")
    assert key.public_key() == signing.load_public_key(
        tmp_path / "out" / "term-0001" / "device.pem"
    )


def test_registry_records_enrolment_and_revocation(fleet: Fleet) -> None:
    one = fleet.enrol("term-0001").record
    fleet.enrol("term-0002")
    fleet.revoke("term-0002", "stolen")
    data = json.loads(fleet.paths.registry.read_text())
    by_id = {d["id"]: d for d in data["devices"]}
    assert by_id["term-0001"]["status"] == "active"
    assert (
        by_id["term-0001"]["fingerprint"]
        == one.fingerprint
        == signing.cert_fingerprint(
            x509.load_pem_x509_certificate((fleet.paths.devices / "term-0001.pem").read_bytes())
        )
    )
    assert by_id["term-0002"]["status"] == "revoked"
    assert by_id["term-0002"]["reason"] == "stolen" and by_id["term-0002"]["revoked_at"]
    assert [d.id for d in fleet.devices()] == ["term-0001", "term-0002"]


@pytest.mark.parametrize(
    ("device_id", "message"),
    [
        ("Term_1", "invalid device_id"),
        ("ab", "invalid device_id"),
        ("term/1", "invalid device_id"),
        ("lifecert-central", "reserved"),
    ],
)
def test_bad_ids_are_refused(fleet: Fleet, device_id: str, message: str) -> None:
    with pytest.raises(ProvisioningError, match=message):
        fleet.enrol(device_id)
    assert fleet.devices() == []


def test_a_terminals_site_is_in_its_certificate_and_central_reads_it(fleet: Fleet) -> None:
    fleet.enrol("term-0001", site="dongcheng-3")
    fleet.enrol("term-0002")
    trust = DeviceTrust(fleet.paths.ca_cert, fleet.paths.crl, fleet.paths.devices)
    sites = {d.id: d.site for d in fleet.devices()}
    assert sites == {"term-0001": "dongcheng-3", "term-0002": "default"}
    for device_id, site in sites.items():
        cert = x509.load_pem_x509_certificate(
            (fleet.paths.devices / f"{device_id}.pem").read_bytes()
        )
        device = trust.by_kid(signing.cert_fingerprint(cert))
        assert device is not None and device.site == site
    with pytest.raises(ProvisioningError, match="invalid site"):
        fleet.enrol("term-0003", site="Dong Cheng")
    assert len(fleet.devices()) == 2


def test_double_enrolment_and_unknown_revocation_are_refused(fleet: Fleet) -> None:
    fleet.enrol("term-0001")
    with pytest.raises(ProvisioningError, match="already enrolled"):
        fleet.enrol("term-0001")
    with pytest.raises(ProvisioningError, match="not enrolled"):
        fleet.revoke("term-0009")
    fleet.revoke("term-0001")
    with pytest.raises(ProvisioningError, match="already revoked"):
        fleet.revoke("term-0001")
    with pytest.raises(ProvisioningError, match="not reused"):
        fleet.enrol("term-0001")


def test_create_refuses_an_existing_fleet_and_bad_settings(fleet: Fleet, tmp_path: Path) -> None:
    with pytest.raises(ProvisioningError, match="already holds a fleet"):
        Fleet.create(fleet.directory, "again")
    with pytest.raises(ConfigError, match=r"broker\.port"):
        Fleet.create(tmp_path / "bad", "bad", broker_port=70000)
    with pytest.raises(ProvisioningError, match="no fleet at"):
        Fleet.open(tmp_path / "nowhere")


def _verifies(secret: dynsec.PasswordHash, password: str) -> bool:
    digest = hashlib.pbkdf2_hmac(
        "sha512", password.encode(), base64.b64decode(secret.salt), secret.iterations, 64
    )
    return base64.b64encode(digest).decode() == secret.hash


@pytest.mark.skipif(not shutil.which("mosquitto_ctrl"), reason="mosquitto_ctrl not installed")
def test_password_hash_is_what_mosquitto_computes(tmp_path: Path) -> None:
    made = tmp_path / "dynsec.json"
    subprocess.run(
        ["mosquitto_ctrl", "dynsec", "init", str(made), "someone", "s3cret-Pw"],
        check=True,
        capture_output=True,
    )
    theirs = json.loads(made.read_text())["clients"][0]
    ours = dynsec.hash_password("s3cret-Pw", base64.b64decode(theirs["salt"]))
    assert (ours.hash, ours.salt, ours.iterations) == (
        theirs["password"],
        theirs["salt"],
        theirs["iterations"],
    )


def test_dynsec_file_binds_devices_to_their_ids_and_literal_topics(fleet: Fleet) -> None:
    fleet.enrol("term-0001")
    fleet.enrol("term-0002")
    fleet.revoke("term-0002", "stolen")
    doc = json.loads(fleet.paths.dynsec.read_text())
    assert stat.S_IMODE(fleet.paths.dynsec.stat().st_mode) == 0o600
    assert doc["defaultACLAccess"] == {
        "publishClientSend": False,
        "publishClientReceive": False,
        "subscribe": False,
        "unsubscribe": True,
    }
    clients = {c["username"]: c for c in doc["clients"]}
    assert set(clients) == {
        "lifecert-central",
        "lifecert-admin",
        "lifecert-renewal",
        "term-0001",
    }  # one per device
    assert clients["term-0001"]["clientid"] == "term-0001"
    assert "clientid" not in clients["lifecert-central"]
    password = (fleet.paths.bundle("term-0001") / "mqtt.password").read_text().strip()
    entry = clients["term-0001"]
    secret = dynsec.PasswordHash(
        salt=entry["salt"], hash=entry["password"], iterations=entry["iterations"]
    )
    assert _verifies(secret, password)
    assert entry["roles"] == [{"rolename": "device-term-0001"}]
    roles = {r["rolename"]: r["acls"] for r in doc["roles"]}
    device = {(a["acltype"], a["topic"]) for a in roles["device-term-0001"]}
    assert ("publishClientSend", "lifecert/v1/dev/term-0001/result") in device
    assert ("subscribeLiteral", "lifecert/v1/dev/term-0001/ack") in device
    assert ("publishClientReceive", "lifecert/v1/dev/term-0001/ack") in device
    assert all("+" not in t and "#" not in t and "term-0001" in t for _, t in device)
    assert not any(
        kind.startswith("subscribe") and t.endswith(("/result", "/req")) for kind, t in device
    )
    central = {(a["acltype"], a["topic"]) for a in roles["central"]}
    assert ("subscribePattern", "$share/+/lifecert/v1/dev/+/result") in central
    assert ("publishClientSend", "lifecert/v1/dev/+/ack") in central
    assert "device-term-0002" not in roles
    renewal = {(a["acltype"], a["topic"]) for a in roles["renewal"]}
    assert renewal == {
        ("subscribePattern", "lifecert/v1/dev/+/csr"),
        ("publishClientReceive", "lifecert/v1/dev/+/csr"),
        ("publishClientSend", "lifecert/v1/dev/+/cert"),
    }


def test_a_device_gets_one_login_and_loses_the_legacy_one_too() -> None:
    """Enrolment creates only ``<id>``; deleting (reissue, revoke) also deletes the
    ``<id>.templates`` login older fleets had, which would keep the old password."""
    create = dynsec.add_device("term-0001", "secret", "lifecert/v1")
    made = [c["username"] for c in create if c["command"] == "createClient"]
    deleted = [c["username"] for c in create if c["command"] == "deleteClient"]
    assert made == ["term-0001"]
    assert (
        deleted
        == ["term-0001", "term-0001.templates"]
        == list(dynsec.device_client_ids("term-0001"))
    )
    assert [c["command"] for c in create][-2:] == ["createRole", "createClient"]
    with pytest.raises(ValueError, match="invalid device_id"):
        dynsec.legacy_login("term.0001")  # never another device's name


def test_registry_keeps_only_the_hash_of_the_bundle_password(fleet: Fleet) -> None:
    record = fleet.enrol("term-0001").record
    password = (fleet.paths.bundle("term-0001") / "mqtt.password").read_text().strip()
    assert record.broker_password is not None and _verifies(record.broker_password, password)
    assert password not in fleet.paths.registry.read_text()
    assert password not in fleet.paths.dynsec.read_text()


def test_reissue_replaces_the_password_and_keeps_the_key(fleet: Fleet) -> None:
    bundle = fleet.enrol("term-0001").bundle
    old, cert = (bundle / "mqtt.password").read_text(), (bundle / "device.pem").read_bytes()
    (bundle / "device.key").unlink()  # the operator deleted the copy after shipping it
    done = fleet.reissue("term-0001")
    new = (bundle / "mqtt.password").read_text().strip()
    assert new != old.strip() and not (bundle / "device.key").exists()
    assert done.record.broker_password is not None and _verifies(done.record.broker_password, new)
    assert "broker not running" in done.broker
    assert (bundle / "device.pem").read_bytes() == cert  # same certificate, nothing re-keyed
    fleet.revoke("term-0001")
    with pytest.raises(ProvisioningError, match="revoked"):
        fleet.reissue("term-0001")
    with pytest.raises(ProvisioningError, match="not enrolled"):
        fleet.reissue("term-0404")


def test_an_old_fleet_gets_its_broker_logins_from_broker_config(fleet: Fleet) -> None:
    """A fleet made before dynamic security: no service passwords, devices without hashes."""
    fleet.enrol("term-0001")
    data = json.loads(fleet.paths.registry.read_text())
    data["devices"][0].pop("broker_password")
    fleet.paths.registry.write_text(json.dumps(data))
    for rel in (
        "central/mqtt.password",
        "broker/admin.password",
        "broker/admin.pem",
        "broker/renewal.password",
        "broker/renewal.pem",
    ):
        (fleet.directory / rel).unlink()
    (fleet.paths.broker / "acl").write_text("user term-0001\ntopic deny #\n")
    central_toml = fleet.paths.central / "central.toml"
    central_toml.write_text(
        central_toml.read_text().replace('password_file = "mqtt.password"\n', "")
    )
    assert fleet.central_config_lacks_password()
    fleet.write_broker_config(BrokerOptions(port=18883))
    assert fleet.central_password() and fleet.admin_login().password
    assert not (fleet.paths.broker / "acl").exists()
    users = {c["username"] for c in json.loads(fleet.paths.dynsec.read_text())["clients"]}
    assert users == {"lifecert-central", "lifecert-admin", "lifecert-renewal"}  # term-0001 waits
    assert fleet.renewal_password()
    fleet.reissue("term-0001")
    users = {c["username"] for c in json.loads(fleet.paths.dynsec.read_text())["clients"]}
    assert "term-0001" in users


def test_broker_conf_sizes_queues_and_requires_client_certs(fleet: Fleet, tmp_path: Path) -> None:
    conf = fleet.write_broker_config(
        BrokerOptions(port=18883, bind="127.0.0.1", persistence_dir=tmp_path / "p")
    ).read_text()
    settings = dict(
        line.split(" ", 1) for line in conf.splitlines() if line and not line.startswith("#")
    )
    assert settings["require_certificate"] == "true"
    assert settings["use_identity_as_username"] == "false"
    assert settings["allow_anonymous"] == "false"
    assert settings["plugin"].endswith("mosquitto_dynamic_security.so")
    assert settings["plugin_opt_config_file"] == str(fleet.paths.dynsec)
    assert "acl_file" not in settings
    assert settings["crlfile"] == str(fleet.paths.crl)
    assert settings["listener"] == "18883 127.0.0.1"
    assert settings["max_queued_messages"] == "0"
    assert int(settings["max_queued_bytes"]) >= 64 * 1024 * 1024
    assert settings["persistence"] == "true"
    assert settings["persistence_location"] == f"{(tmp_path / 'p').resolve()}/"
    assert int(settings["max_packet_size"]) > 64 * 1024
    assert settings["persistent_client_expiration"]
