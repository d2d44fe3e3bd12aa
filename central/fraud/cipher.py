"""Face templates at rest: AES-256-GCM, key from ``[duplicates] key_file``, the result id
bound as associated data (a row moved to another result does not decrypt)."""

import secrets
import uuid
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from common import keyfile
from common.errors import LifecertError

_NONCE = 12


class TemplateStoreError(LifecertError, ValueError):
    """A stored template cannot be decrypted (wrong key or tampered row)."""


def write_key(path: Path) -> Path:
    """Create a new random 32-byte template key (hex, mode 0600); refuses to overwrite."""
    return keyfile.write_key(path)


class TemplateCipher:
    """AES-256-GCM for templates at rest; the result id is bound as associated data."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def from_file(cls, path: Path) -> "TemplateCipher":
        return cls(
            keyfile.read_key(path, "duplicates.key_file", "lifecert-central duplicates init-key")
        )

    def encrypt(self, vector: np.ndarray, result_id: uuid.UUID) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        data = vector.astype("<f4").tobytes()
        return nonce + self._aead.encrypt(nonce, data, result_id.bytes)

    def decrypt(self, blob: bytes, result_id: uuid.UUID) -> np.ndarray:
        try:
            data = self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], result_id.bytes)
        except InvalidTag:
            raise TemplateStoreError(
                f"stored template of result {result_id} does not decrypt: wrong key or tampered"
            ) from None
        return np.frombuffer(data, dtype="<f4")
