"""Deliver payment files to the bank over SFTP (paramiko), with the bank's host key pinned.

The server must present exactly the key in ``[bank.sftp] host_key``; any other key,
or none known, is refused before we authenticate. Uploads go to ``NAME.part`` and
are renamed once complete, so the bank never picks up half a file.
"""

import base64
import binascii
import logging
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paramiko

from central.payments.settings import SftpSettings
from common.errors import ConfigError, LifecertError

log = logging.getLogger(__name__)


class DeliveryError(LifecertError, ConnectionError):
    """The bank's server refused us, or we refused it (host key), or the transfer failed."""


def pinned_key(path: Path) -> paramiko.PKey:
    """The host key from an OpenSSH public key line (``type base64 [comment]``)."""
    try:
        fields = path.read_text().split()
        return paramiko.PKey.from_type_string(fields[0], base64.b64decode(fields[1]))
    except (OSError, IndexError, binascii.Error, paramiko.SSHException, ValueError) as exc:
        raise ConfigError(
            f"bank.sftp.host_key: cannot read a public key from {path}: {exc} "
            "(put the server's 'ssh-ed25519 AAAA...' line there)"
        ) from None


def _fingerprint(key: paramiko.PKey) -> str:
    return key.fingerprint  # "SHA256:..."


@contextmanager
def connect(settings: SftpSettings) -> Iterator[paramiko.SFTPClient]:
    """An SFTP session to the bank, host key checked against the pinned one."""
    expected = pinned_key(settings.host_key)
    try:
        client_key = paramiko.PKey.from_path(settings.key_file)
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise ConfigError(f"bank.sftp.key_file: cannot load {settings.key_file}: {exc}") from None
    client = paramiko.SSHClient()
    name = settings.host if settings.port == 22 else f"[{settings.host}]:{settings.port}"
    client.get_host_keys().add(name, expected.get_name(), expected)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            settings.host,
            settings.port,
            username=settings.username,
            pkey=client_key,
            look_for_keys=False,
            allow_agent=False,
            timeout=settings.timeout_s,
            banner_timeout=settings.timeout_s,
            auth_timeout=settings.timeout_s,
        )
        sftp = client.open_sftp()
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise DeliveryError(
            f"{name} presented host key {_fingerprint(exc.key)}, but {_fingerprint(expected)} "
            "is pinned: refusing to connect (check bank.sftp.host_key with the bank)"
        ) from None
    except (paramiko.SSHException, OSError) as exc:
        client.close()
        raise DeliveryError(f"cannot open SFTP to {name}: {exc}") from None
    try:
        yield sftp
    finally:
        sftp.close()
        client.close()


def upload(settings: SftpSettings, local: Path) -> str:
    """Upload ``local`` into ``remote_dir`` atomically; returns the remote path."""
    remote = posixpath.join(settings.remote_dir, local.name)
    with connect(settings) as sftp:
        try:
            sftp.put(str(local), remote + ".part", confirm=True)
            sftp.posix_rename(remote + ".part", remote)
        except (OSError, paramiko.SSHException) as exc:
            raise DeliveryError(f"upload of {local.name} to {remote} failed: {exc}") from None
    log.info("delivered %s to %s:%s", local.name, settings.host, remote)
    return remote


def download(settings: SftpSettings, remote: str, local: Path) -> Path:
    """Fetch ``remote`` (relative to ``remote_dir`` unless absolute) into ``local``."""
    path = remote if remote.startswith("/") else posixpath.join(settings.remote_dir, remote)
    with connect(settings) as sftp:
        try:
            sftp.get(path, str(local))
        except (OSError, paramiko.SSHException) as exc:
            raise DeliveryError(f"download of {path} failed: {exc}") from None
    return local
