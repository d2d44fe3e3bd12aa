"""Edge keys from a bundle, plus the ``edge_bundle`` helper the other edge unit tests use.

The helper writes what provisioning puts on a device (a CA-signed device
certificate and key, central's public keys, edge.toml) with real P-256 keys,
so the edge tests run without the fleet fixtures.
"""

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from common.errors import ConfigError
from edge import config as edge_config
from edge.adapters import keys as edge_keys
from edge.config import EdgeConfig
from protocol import signing

DEVICE_ID = "term-0001"


@dataclass
class Bundle:
    """An enrolment bundle on disk and the central keys that go with it."""

    dir: Path
    config_path: Path
    central_sign_key: ec.EllipticCurvePrivateKey
    central_seal_key: ec.EllipticCurvePrivateKey
    device_cert: x509.Certificate

    def config(self) -> EdgeConfig:
        return edge_config.load(self.config_path)

    def write_config(self, **overrides: object) -> None:
        write_edge_toml(self.config_path, **overrides)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(issuer_key, hashes.SHA256())
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_pub(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_edge_toml(path: Path, **overrides: object) -> None:
    """The edge.toml provisioning writes (docs/design.md), with top-level/section overrides."""
    data: dict[str, object] = {
        "device_id": DEVICE_ID,
        "data_dir": "var",
        "log_level": "INFO",
        "mqtt": {
            "host": "127.0.0.1",
            "port": 8883,
            "root": "lifecert/v1",
            "tls": {"ca_file": "ca.pem", "cert_file": "device.pem", "key_file": "device.key"},
        },
        "central": {
            "sign_pub": "central-sign.pub.pem",
            "seal_pub": "central-seal.pub.pem",
            "model_sign_pub": "models-sign.pub.pem",
        },
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}  # type: ignore[dict-item]
        else:
            data[key] = value
    path.write_text(tomli_w.dumps(data))


def make_bundle(folder: Path, device_id: str = DEVICE_ID) -> Bundle:
    """Write a complete enrolment bundle for ``device_id`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    device_key = ec.generate_private_key(ec.SECP256R1())
    sign_key = ec.generate_private_key(ec.SECP256R1())
    seal_key = ec.generate_private_key(ec.SECP256R1())
    models_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _cert("test-ca", ca_key, "test-ca", ca_key)
    device_cert = _cert(device_id, device_key, "test-ca", ca_key)
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (folder / "device.pem").write_bytes(device_cert.public_bytes(serialization.Encoding.PEM))
    (folder / "device.key").write_bytes(_pem_key(device_key))
    (folder / "central-sign.pub.pem").write_bytes(_pem_pub(sign_key))
    (folder / "central-seal.pub.pem").write_bytes(_pem_pub(seal_key))
    (folder / "models-sign.pub.pem").write_bytes(_pem_pub(models_key))
    config_path = folder / "edge.toml"
    write_edge_toml(config_path, device_id=device_id)
    return Bundle(folder, config_path, sign_key, seal_key, device_cert)


@pytest.fixture
def edge_bundle(tmp_path: Path) -> Bundle:
    """A fresh enrolment bundle in a temporary folder."""
    return make_bundle(tmp_path / "bundle")


def test_keys_load_from_bundle(edge_bundle: Bundle) -> None:
    keys = edge_keys.load(edge_bundle.config())
    assert keys.signer.kid == signing.cert_fingerprint(edge_bundle.device_cert)
    assert keys.seal_kid == signing.key_fingerprint(edge_bundle.central_seal_key.public_key())
    token = signing.Signer(edge_bundle.central_sign_key, "central").sign(b"ack")
    assert keys.central_verifier.verify(token) == b"ack"


def test_key_from_another_bundle_is_refused(tmp_path: Path, edge_bundle: Bundle) -> None:
    other = make_bundle(tmp_path / "other")
    (edge_bundle.dir / "device.key").write_bytes((other.dir / "device.key").read_bytes())
    with pytest.raises(ConfigError, match=r"mqtt\.tls\.key_file: .* does not belong to"):
        edge_keys.load(edge_bundle.config())


def test_device_id_must_match_certificate(edge_bundle: Bundle) -> None:
    edge_bundle.write_config(device_id="term-0002")
    with pytest.raises(ConfigError, match=r"device_id: 'term-0002' differs .* 'term-0001'"):
        edge_keys.load(edge_bundle.config())


def test_missing_central_key_names_the_field(edge_bundle: Bundle) -> None:
    (edge_bundle.dir / "central-seal.pub.pem").unlink()
    with pytest.raises(ConfigError, match=r"central\.seal_pub: cannot read"):
        edge_keys.load(edge_bundle.config())


def test_systemd_credential_overrides_key_file(
    tmp_path: Path, edge_bundle: Bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "device.key").write_bytes((edge_bundle.dir / "device.key").read_bytes())
    (edge_bundle.dir / "device.key").unlink()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert edge_keys.device_key_path(edge_bundle.config()) == creds / "device.key"
    assert edge_keys.load(edge_bundle.config()).signer.kid
