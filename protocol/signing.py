"""JWS (RFC 7515) compact ES256 signing and verification with joserfc.

``kid`` is the SHA-256 fingerprint (hex) of the signer's X.509 certificate for
devices, and of the public key (SubjectPublicKeyInfo DER) for central's keys.
"""

import hashlib
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from protocol.errors import SignatureError

ALGORITHM: Final = "ES256"


def cert_fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER encoding, lower-case hex: a device's ``kid``."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def key_fingerprint(key: ec.EllipticCurvePublicKey) -> str:
    """SHA-256 of the public key's SubjectPublicKeyInfo DER, lower-case hex."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Load a P-256 private key from PEM; ``SignatureError`` if it is not one."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise SignatureError(f"{path}: not a P-256 (secp256r1) private key")
    return key


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    """Load a P-256 public key (PEM public key or certificate)."""
    data = path.read_bytes()
    key: object
    if b"BEGIN CERTIFICATE" in data:
        key = x509.load_pem_x509_certificate(data).public_key()
    else:
        key = serialization.load_pem_public_key(data)
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise SignatureError(f"{path}: not a P-256 (secp256r1) public key")
    return key


def _jwk(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> ECKey:
    return ECKey.import_key(key)


class Signer:
    """Signs payloads as JWS compact ES256 with a fixed ``kid``."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, kid: str) -> None:
        self._key = _jwk(key)
        self.kid = kid

    def sign(self, payload: bytes) -> str:
        """The JWS compact serialisation of ``payload``."""
        return jws.serialize_compact({"alg": ALGORITHM, "kid": self.kid}, payload, self._key)


class Verifier:
    """Verifies JWS compact ES256 against one public key."""

    def __init__(self, key: ec.EllipticCurvePublicKey) -> None:
        self._key = _jwk(key)

    def verify(self, token: str | bytes) -> bytes:
        """The payload if the signature is valid; ``SignatureError`` otherwise."""
        try:
            return jws.deserialize_compact(token, self._key, algorithms=[ALGORITHM]).payload
        except (JoseError, ValueError) as exc:
            raise SignatureError(f"signature does not verify: {exc}") from None


def unverified_header(token: str | bytes) -> dict[str, Any]:
    """The protected header, *not* verified: use only to pick the key (``kid``)."""
    try:
        header = jws.extract_compact(token if isinstance(token, bytes) else token.encode())
    except (JoseError, ValueError, UnicodeDecodeError) as exc:
        raise SignatureError(f"not a JWS compact serialisation: {exc}") from None
    protected = dict(header.protected)
    if protected.get("alg") != ALGORITHM:
        raise SignatureError(f"algorithm {protected.get('alg')!r} not allowed, only {ALGORITHM}")
    if not isinstance(protected.get("kid"), str):
        raise SignatureError("protected header has no 'kid'")
    return protected
