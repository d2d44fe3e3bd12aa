"""The terminal's template cache: face and vein templates encrypted at rest in edge.sqlite.

Each template is AES-256-GCM encrypted under a key derived (HKDF-SHA256) from
the device's private key, with the retiree id and kind as associated data, so
a copied database without the device key reveals nothing and a row cannot be
moved to another person. Its own table in the edge database (WAL).
"""

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
