"""The fleet directory: layout, bundles, configs that validate, registry, broker config."""

import json
import stat
import tarfile
from pathlib import Path

import pytest
from cryptography import x509

from protocol import signing
from protocol.config import Section, load
from protocol.errors import ConfigError
from protocol.settings import CentralKeys, MqttSettings
from provisioning import brokerconf
from provisioning.brokerconf import BrokerOptions
from provisioning.errors import ProvisioningError
from provisioning.fleet import Fleet

BUNDLE_FILES = {
    "edge.toml",
    "device.pem",
    "device.key",
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
        "central/central.toml",
        "models/sign.key",
        "models/sign.pub.pem",
        "broker/server.pem",
        "broker/server.key",
        "broker/mosquitto.conf",
        "broker/acl",
    ):
        assert (root / rel).is_file(), rel
    assert (root / "devices").is_dir() and (root / "bundles").is_dir()
    assert Fleet.open(root).settings.name == "test"


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


def test_acl_confines_devices_and_names_central() -> None:
    text = brokerconf.acl("lifecert/v1", revoked=["term-0002"])
    lines = text.splitlines()
    assert "pattern write lifecert/v1/dev/%u/result" in lines
    assert "pattern read lifecert/v1/dev/%u/ack" in lines
    assert not any(line.startswith("pattern") and "+" in line for line in lines)
    assert not any("pattern read" in line and line.endswith(("/result", "/req")) for line in lines)
    central = lines[lines.index("user lifecert-central") :]
    assert "topic read $share/central/lifecert/v1/dev/+/result" in central
    assert "topic write lifecert/v1/dev/+/ack" in central
    revoked = lines.index("user term-0002")
    assert lines[revoked + 1] == "topic deny #"


def test_broker_conf_sizes_queues_and_requires_client_certs(fleet: Fleet, tmp_path: Path) -> None:
    conf = fleet.write_broker_config(
        BrokerOptions(port=18883, bind="127.0.0.1", persistence_dir=tmp_path / "p")
    ).read_text()
    settings = dict(
        line.split(" ", 1) for line in conf.splitlines() if line and not line.startswith("#")
    )
    assert settings["require_certificate"] == "true"
    assert settings["use_identity_as_username"] == "true"
    assert settings["allow_anonymous"] == "false"
    assert settings["crlfile"] == str(fleet.paths.crl)
    assert settings["listener"] == "18883 127.0.0.1"
    assert settings["max_queued_messages"] == "0"
    assert int(settings["max_queued_bytes"]) >= 64 * 1024 * 1024
    assert settings["persistence"] == "true"
    assert settings["persistence_location"] == f"{(tmp_path / 'p').resolve()}/"
    assert int(settings["max_packet_size"]) > 64 * 1024
    assert settings["persistent_client_expiration"]
