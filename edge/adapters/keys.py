"""The terminal's keys, loaded once from the enrolment bundle with clear errors.

The device signs results with its TLS key (``kid`` = fingerprint of its
certificate); it verifies central's acks with ``central.sign_pub`` and seals
templates to ``central.seal_pub``.
"""

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from common.config import secret_path
from common.errors import ConfigError
from edge.config import EdgeConfig
from protocol import signing
from protocol.errors import SignatureError


@dataclass(frozen=True)
class Keys:
    """What the terminal signs, verifies and seals with."""

    signer: signing.Signer
    central_verifier: signing.Verifier
    central_sign_kid: str
    seal_pub: ec.EllipticCurvePublicKey
    seal_kid: str


def device_key_path(cfg: EdgeConfig) -> Path:
    """The device key: systemd's credential ``device.key`` if given, else ``mqtt.tls.key_file``."""
    return secret_path("device.key", cfg.mqtt.tls.key_file)


def _read(field: str, path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{field}: cannot read {what} {path}: {exc.strerror or exc}") from None


def load(cfg: EdgeConfig) -> Keys:
    """Load and cross-check the device key, certificate and central's public keys."""
    key_path = device_key_path(cfg)
    _read("mqtt.tls.key_file", key_path, "the device key")
    try:
        key = signing.load_private_key(key_path)
    except (SignatureError, ValueError, TypeError) as exc:
        raise ConfigError(f"mqtt.tls.key_file: {key_path} is not a P-256 key: {exc}") from None
    cert_data = _read("mqtt.tls.cert_file", cfg.mqtt.tls.cert_file, "the device certificate")
    try:
        cert = x509.load_pem_x509_certificate(cert_data)
    except ValueError as exc:
        raise ConfigError(f"mqtt.tls.cert_file: not a PEM certificate: {exc}") from None
    if cert.public_key() != key.public_key():
        raise ConfigError(
            f"mqtt.tls.key_file: {key_path} does not belong to {cfg.mqtt.tls.cert_file}: "
            "copy both from the same enrolment bundle"
        )
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names or names[0].value != cfg.device_id:
        found = names[0].value if names else None
        raise ConfigError(
            f"device_id: {cfg.device_id!r} differs from the certificate's CN {found!r}: "
            "use the device id the bundle was enrolled for"
        )
    central: dict[str, ec.EllipticCurvePublicKey] = {}
    for field in ("sign_pub", "seal_pub"):
        path: Path = getattr(cfg.central, field)
        _read(f"central.{field}", path, "central's public key")
        try:
            central[field] = signing.load_public_key(path)
        except (SignatureError, ValueError) as exc:
            raise ConfigError(f"central.{field}: {path} is not a P-256 key: {exc}") from None
    return Keys(
        signer=signing.Signer(key, kid=signing.cert_fingerprint(cert)),
        central_verifier=signing.Verifier(central["sign_pub"]),
        central_sign_kid=signing.key_fingerprint(central["sign_pub"]),
        seal_pub=central["seal_pub"],
        seal_kid=signing.key_fingerprint(central["seal_pub"]),
    )
