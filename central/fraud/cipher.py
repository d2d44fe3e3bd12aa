"""Face templates at rest: AES-256-GCM, key from ``[duplicates] key_file``, the result id
bound as associated data (a row moved to another result does not decrypt)."""

import os
import secrets
import uuid
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from common.errors import ConfigError, LifecertError

_NONCE = 12


class TemplateStoreError(LifecertError, ValueError):
    """A stored template cannot be decrypted (wrong key or tampered row)."""


def write_key(path: Path) -> Path:
    """Create a new random 32-byte template key (hex, mode 0600); refuses to overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32) + "\n")
    return path


class TemplateCipher:
    """AES-256-GCM for templates at rest; the result id is bound as associated data."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def from_file(cls, path: Path) -> "TemplateCipher":
        try:
            raw = path.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(
                f"duplicates.key_file: cannot read {path}: {exc} "
                "(create one: lifecert-central duplicates init-key)"
            ) from None
        try:
            key = bytes.fromhex(raw.decode()) if len(raw) == 64 else raw
        except (UnicodeDecodeError, ValueError):
            key = raw
        if len(key) != 32:
            raise ConfigError(f"duplicates.key_file: {path} must hold 32 bytes (or 64 hex digits)")
        return cls(key)

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
