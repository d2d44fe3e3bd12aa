"""JWS (RFC 7515) compact ES256 signing and verification with joserfc.

``kid`` is the SHA-256 fingerprint (hex) of the signer's X.509 certificate for
devices, and of the public key (SubjectPublicKeyInfo DER) for central's keys.
"""

import hashlib
import re
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
_COMPACT = re.compile(rb"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+")
_KID = re.compile(r"[0-9a-f]{64}")
_BASE64URL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


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
        data = _compact(token)
        try:
            return jws.deserialize_compact(data, self._key, algorithms=[ALGORITHM]).payload
        except (JoseError, ValueError) as exc:
            raise SignatureError(f"signature does not verify: {_why(exc)}") from None


class MalformedError(SignatureError):
    """Not a JWS compact serialisation we accept (nothing to verify)."""


def _compact(token: str | bytes) -> bytes:
    """``token`` as bytes if it has the compact form exactly, else ``MalformedError``."""
    try:
        data = token if isinstance(token, bytes) else token.encode("ascii")
    except UnicodeEncodeError:
        raise MalformedError("not a JWS compact serialisation: non-ASCII characters") from None
    if _COMPACT.fullmatch(data) is None:
        raise MalformedError(f"not a JWS compact serialisation: {_form_problem(data)}")
    return data


def _form_problem(data: bytes) -> str:
    """Say what breaks the compact form (three base64url parts joined by '.')."""
    if data != data.rstrip():
        return "trailing whitespace after the signature (send the token alone, no newline)"
    if data.count(b".") != 2:
        return f"{data.count(b'.') + 1} parts, 3 expected"
    header, _, signature = data.split(b".")
    if not header or not signature:
        return "empty header or signature"
    at = next(i for i, c in enumerate(data) if c not in _BASE64URL)
    return f"byte {at} (0x{data[at]:02x}) is not base64url"


def _why(exc: Exception) -> str:
    """A JOSE error's text (``bad_signature: `` has an empty description: drop the colon)."""
    return str(exc).strip().rstrip(":") or type(exc).__name__


def unverified_header(token: str | bytes) -> dict[str, Any]:
    """The protected header, *not* verified: use only to pick the key (``kid``).

    ``MalformedError`` (a ``SignatureError``) for anything but ES256 with a SHA-256 hex
    ``kid`` and no critical extensions.
    """
    data = _compact(token)
    try:
        header = jws.extract_compact(data)
    except (JoseError, ValueError, UnicodeDecodeError) as exc:
        raise MalformedError(f"not a JWS compact serialisation: {_why(exc)}") from None
    protected = dict(header.protected)
    if protected.get("alg") != ALGORITHM:
        raise MalformedError(f"algorithm {protected.get('alg')!r} not allowed, only {ALGORITHM}")
    if "crit" in protected:
        raise MalformedError(
            f"critical header parameter(s) {protected['crit']!r} not supported (RFC 7515 4.1.11)"
        )
    kid = protected.get("kid")
    if not isinstance(kid, str) or _KID.fullmatch(kid) is None:
        raise MalformedError("protected header has no 'kid' of 64 lower-case hex digits")
    return protected
