"""Standard Webhooks signatures (https://www.standardwebhooks.com): secrets and headers.

A secret is ``whsec_`` followed by the base64 of at least 24 random bytes, kept in a file
(mode 0600) that a config field names. A signed request carries ``webhook-id`` (the
message key), ``webhook-timestamp`` (unix seconds) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``); the ``standardwebhooks``
package signs, as it verifies on the receiver's side.
"""

import base64
import binascii
import datetime as dt
import os
import secrets
from pathlib import Path

from standardwebhooks import Webhook

from common.errors import ConfigError

PREFIX = "whsec_"
MIN_BYTES = 24
NEW_BYTES = 32
MAKE = "lifecert-central notify webhook-secret FILE"


def new_secret() -> str:
    """A fresh secret: ``whsec_`` + base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(NEW_BYTES)).decode()


def write_secret(path: Path) -> Path:
    """Write a fresh secret to a new file ``path`` (mode 0600); refuses to overwrite."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(new_secret() + "\n")
    return path


def _key_bytes(text: str) -> bytes | None:
    """The secret's key, or None when ``text`` is not ``whsec_`` + base64 (padded or not)."""
    if not text.startswith(PREFIX):
        return None
    rest = text[len(PREFIX) :]
    try:
        return base64.b64decode(rest + "=" * (-len(rest) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def read_secret(path: Path, field: str) -> str:
    """The secret in ``path``; ``ConfigError`` naming ``field`` and the fix when the file is
    missing, unreadable or holds no valid secret (the error never shows the file's content)."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{field}: cannot read {path}: {reason} (make one: {MAKE})") from None
    key = _key_bytes(text)
    if key is None or len(key) < MIN_BYTES:
        raise ConfigError(
            f"{field}: {path} must hold {PREFIX} followed by the base64 of at least "
            f"{MIN_BYTES} random bytes (make one: {MAKE})"
        )
    return text


class Signer:
    """Signs request bodies with one secret (its ``repr`` never shows the secret)."""

    def __init__(self, secret: str) -> None:
        self._webhook = Webhook(secret)

    def __repr__(self) -> str:
        return "Signer(<secret>)"

    def headers(self, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        """The three Standard Webhooks headers for ``body`` sent as ``msg_id`` at ``timestamp``
        (unix seconds)."""
        when = dt.datetime.fromtimestamp(timestamp, dt.UTC)
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": self._webhook.sign(msg_id, when, body),
        }
