"""Symmetric keys at rest in files: 32 bytes, written as 64 hex digits, mode 0600.

Central's secrets at rest (face templates, staff second factors) are encrypted with such
a key, each purpose its own file named in its config section.
"""

import os
import secrets
from pathlib import Path

from common.errors import ConfigError

KEY_BYTES = 32


def write_key(path: Path) -> Path:
    """Create a new random 32-byte key (hex, mode 0600); refuses to overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(KEY_BYTES) + "\n")
    return path


def read_key(path: Path, field: str, make: str) -> bytes:
    """The 32-byte key in ``path`` (raw or 64 hex digits), else ``ConfigError`` naming the
    config ``field`` and the command that ``make``s one."""
    try:
        raw = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"{field}: cannot read {path}: {exc} (create one: {make})") from None
    try:
        key = bytes.fromhex(raw.decode()) if len(raw) == 2 * KEY_BYTES else raw
    except (UnicodeDecodeError, ValueError):
        key = raw
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{field}: {path} must hold 32 bytes (or 64 hex digits)")
    return key
