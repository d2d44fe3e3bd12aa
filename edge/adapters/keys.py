"""The terminal's keys, loaded once from the enrolment bundle with clear errors.

The device signs results with its TLS key (``kid`` = fingerprint of its
certificate); it verifies central's acks with ``central.sign_pub`` and seals
templates to ``central.seal_pub``.
"""

import logging
import os
import threading
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

log = logging.getLogger(__name__)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class DeviceSigner(signing.Signer):
    """Signs with the device key on disk, re-read when the certificate file is replaced (a
    renewal switched key and certificate): ``kid`` always names the certificate of the key."""

    def __init__(self, key_path: Path, cert_path: Path) -> None:
        self._paths = (key_path, cert_path)
        self._lock = threading.Lock()
        self._stamp = _stamp(cert_path)
        key, cert = _pair(key_path, cert_path)
        self._keys = [key]  # every device key this process has used, newest first
        super().__init__(key, kid=signing.cert_fingerprint(cert))

    def private_keys(self) -> list[ec.EllipticCurvePrivateKey]:
        """The current device key, then the ones it replaced in this process (templates
        central sealed to the old key before the renewal was confirmed still open)."""
        self.refresh()
        with self._lock:
            return list(self._keys)

    def refresh(self) -> None:
        """Take the key and certificate on disk if the certificate changed and they match."""
        stamp = _stamp(self._paths[1])
        if stamp == self._stamp:
            return
        try:
            key, cert = _pair(*self._paths)
        except ConfigError as exc:  # half-way through a switch: keep signing with the old pair
            log.warning("device key not switched yet: %s", exc)
            return
        with self._lock:
            super().__init__(key, kid=signing.cert_fingerprint(cert))
            self._keys.insert(0, key)
            self._stamp = stamp
        log.info("signing with the renewed certificate %s", self.kid[:16])

    def sign(self, payload: bytes) -> str:
        """The JWS of ``payload`` with the current key and ``kid``."""
        self.refresh()
        with self._lock:
            return super().sign(payload)


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


def _pair(key_path: Path, cert_path: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The device key and its certificate, checked to belong together."""
    _read("mqtt.tls.key_file", key_path, "the device key")
    try:
        key = signing.load_private_key(key_path)
    except (SignatureError, ValueError, TypeError) as exc:
        raise ConfigError(f"mqtt.tls.key_file: {key_path} is not a P-256 key: {exc}") from None
    cert_data = _read("mqtt.tls.cert_file", cert_path, "the device certificate")
    try:
        cert = x509.load_pem_x509_certificate(cert_data)
    except ValueError as exc:
        raise ConfigError(f"mqtt.tls.cert_file: not a PEM certificate: {exc}") from None
    if cert.public_key() != key.public_key():
        raise ConfigError(
            f"mqtt.tls.key_file: {key_path} does not belong to {cert_path}: "
            "copy both from the same enrolment bundle"
        )
    return key, cert


def load(cfg: EdgeConfig) -> Keys:
    """Load and cross-check the device key, certificate and central's public keys."""
    key_path = device_key_path(cfg)
    _key, cert = _pair(key_path, cfg.mqtt.tls.cert_file)
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
        signer=DeviceSigner(key_path, cfg.mqtt.tls.cert_file),
        central_verifier=signing.Verifier(central["sign_pub"]),
        central_sign_kid=signing.key_fingerprint(central["sign_pub"]),
        seal_pub=central["seal_pub"],
        seal_kid=signing.key_fingerprint(central["seal_pub"]),
    )
