"""The terminal's template cache: face and vein templates encrypted at rest in edge.sqlite.

Each template is AES-256-GCM encrypted under the cache key, with the retiree id and
kind as associated data, so a copied database without the device key reveals nothing
and a row cannot be moved to another person. Its own table in the edge database (WAL).

The cache key was first derived (HKDF-SHA256) from the device's private key; it is kept
in ``<data_dir>/cache-key.json`` sealed (JWE ECDH-ES) to each device key that may open
it, so a certificate renewal (a new device key) re-seals it instead of losing the cache:
:func:`reseal_key` before the switch, :func:`key_for` at start.
"""

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Literal, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from common.errors import LifecertError
from protocol import sealing, signing
from protocol.errors import SealError

Kind = Literal["face", "vein"]
_INFO = b"lifecert template cache v1"


class CacheError(LifecertError, ValueError):
    """A cached template cannot be opened (other device key, or tampered)."""


def cache_key(device_key: ec.EllipticCurvePrivateKey) -> bytes:
    """The 256-bit cache key derived from the device's private key."""
    secret = device_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return HKDF(hashes.SHA256(), 32, salt=None, info=_INFO).derive(secret)


KEY_FILE = "cache-key.json"


def _key_file(data_dir: Path) -> Path:
    return data_dir / KEY_FILE


def _wraps(data_dir: Path) -> dict[str, str]:
    try:
        data = json.loads(_key_file(data_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _save_wraps(data_dir: Path, wraps: dict[str, str]) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = _key_file(data_dir)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(wraps, out)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


def key_for(data_dir: Path, device_key: ec.EllipticCurvePrivateKey) -> bytes:
    """The cache key this device key opens (sealed to it in ``cache-key.json``); a cache
    made before renewal existed gets its derived key sealed there on first use."""
    kid = signing.key_fingerprint(device_key.public_key())
    wraps = _wraps(data_dir)
    if kid in wraps:
        try:
            return sealing.unseal(wraps[kid], device_key)
        except SealError as exc:
            raise CacheError(f"{_key_file(data_dir)}: the cache key does not open: {exc}") from None
    key = cache_key(device_key)
    wraps[kid] = sealing.seal(key, device_key.public_key(), kid=kid)
    _save_wraps(data_dir, wraps)
    return key


def reseal_key(
    data_dir: Path, current: ec.EllipticCurvePrivateKey, new: ec.EllipticCurvePublicKey
) -> None:
    """Seal the cache key to ``new`` too (before switching to it), durably."""
    key = key_for(data_dir, current)
    wraps = _wraps(data_dir)
    kid = signing.key_fingerprint(new)
    wraps[kid] = sealing.seal(key, new, kid=kid)
    _save_wraps(data_dir, wraps)


class TemplateCache:
    """Encrypted templates by retiree and kind; a context manager."""

    def __init__(self, path: Path, key: bytes, busy_timeout_s: float = 10.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._aead = AESGCM(key)
        self._db = sqlite3.connect(path, timeout=busy_timeout_s, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS template_cache (retiree_id TEXT NOT NULL, "
            "kind TEXT NOT NULL, sealed BLOB NOT NULL, updated_at REAL NOT NULL, "
            "PRIMARY KEY (retiree_id, kind))"
        )
        self._db.commit()

    def put(self, retiree_id: str, kind: Kind, template: bytes) -> None:
        """Store (or replace) a template, encrypted."""
        nonce = os.urandom(12)
        sealed = nonce + self._aead.encrypt(nonce, template, f"{kind}:{retiree_id}".encode())
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO template_cache VALUES (?, ?, ?, ?)",
                (retiree_id, kind, sealed, time.time()),
            )

    def get(self, retiree_id: str, kind: Kind) -> bytes | None:
        """The template in clear, or ``None`` when none is cached."""
        row = self._db.execute(
            "SELECT sealed FROM template_cache WHERE retiree_id = ? AND kind = ?",
            (retiree_id, kind),
        ).fetchone()
        if row is None:
            return None
        sealed = bytes(row[0])
        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], f"{kind}:{retiree_id}".encode())
        except InvalidTag:
            raise CacheError(
                f"cached {kind} template cannot be opened (another device key, or tampered)"
            ) from None

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
