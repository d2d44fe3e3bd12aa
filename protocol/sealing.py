"""Seal biometric templates to central's P-256 key (JWE compact, ECDH-ES+A256KW / A256GCM).

Templates never travel or rest in clear: the terminal seals each new template
to central's sealing key; only central can open it.
"""

from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from protocol.errors import SealError
from protocol.limits import MAX_TEMPLATE_BYTES

ALGORITHM: Final = "ECDH-ES+A256KW"
ENCRYPTION: Final = "A256GCM"


def seal(plaintext: bytes, recipient: ec.EllipticCurvePublicKey, kid: str | None = None) -> str:
    """Encrypt ``plaintext`` so only the holder of ``recipient``'s private key can read it."""
    header = {"alg": ALGORITHM, "enc": ENCRYPTION}
    if kid:
        header["kid"] = kid
    token = jwe.encrypt_compact(header, plaintext, ECKey.import_key(recipient))
    if len(token) > MAX_TEMPLATE_BYTES:
        raise SealError(f"sealed template is {len(token)} bytes, over {MAX_TEMPLATE_BYTES}")
    return token


def unseal(token: str, key: ec.EllipticCurvePrivateKey) -> bytes:
    """Decrypt a sealed template; ``SealError`` if it is tampered or not for this key."""
    if len(token) > MAX_TEMPLATE_BYTES:
        raise SealError(f"sealed template is {len(token)} bytes, over {MAX_TEMPLATE_BYTES}")
    try:
        return (
            jwe.decrypt_compact(
                token,
                ECKey.import_key(key),
                algorithms=[ALGORITHM, ENCRYPTION],
            ).plaintext
            or b""
        )
    except (JoseError, ValueError) as exc:
        raise SealError(f"cannot open sealed template: {exc}") from None
