"""What every command gets (``click.pass_obj``): the ``--config`` path, with the config and
central's parts (``central.bootstrap.Central``) built lazily by the commands that need them,
and the signed-in staff member (``--staff-cert``/``--staff-key``), signed in on first use.
"""

import getpass
import os
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.engine import Engine

from central import config
from central.bootstrap import Central
from central.staff import signin
from central.staff.identity import Actor
from central.staff.permissions import Permission, check
from central.store import db
from common.errors import LifecertError

SIGN_IN = "sign in with --staff-cert and --staff-key (or $LIFECERT_STAFF_CERT/_KEY)"


class State:
    """The ``--config`` path; the config and central's parts, loaded on first use."""

    def __init__(
        self, path: Path, staff_cert: Path | None = None, staff_key: Path | None = None
    ) -> None:
        self.path = path
        self.staff_cert = staff_cert
        self.staff_key = staff_key
        self._central: Central | None = None
        self._actor: Actor | None = None

    @property
    def central(self) -> Central:
        if self._central is None:
            self._central = Central(config.load(self.path))
        return self._central

    @property
    def cfg(self) -> config.CentralConfig:
        return self.central.cfg

    def engine(self, migrated: bool = True) -> Engine:
        """The configured database; an error if it is not at the code's migration head."""
        engine = self.central.engine
        if migrated:
            current, head = db.current_revision(engine), db.head_revision(engine)
            if current != head:
                raise LifecertError(
                    f"database is at revision {current or 'none'}, the code needs {head}: "
                    "run `lifecert-central db upgrade`"
                )
        return engine

    @property
    def signed_in(self) -> bool:
        """Whether a staff certificate and key were given."""
        return self.staff_cert is not None or self.staff_key is not None

    @property
    def actor(self) -> Actor:
        """The staff member the given certificate and key sign in (checked once)."""
        if self._actor is None:
            if self.staff_cert is None or self.staff_key is None:
                raise LifecertError(f"give both --staff-cert and --staff-key: {SIGN_IN}")
            cert, key = _load_credentials(self.staff_cert, self.staff_key)
            self._actor = signin.actor_for_key_holder(
                self.engine(),
                cert,
                key,
                via="cli",
                address=_where(),
                max_failed_logins=self.cfg.staff.max_failed_logins,
            )
        return self._actor


def _where() -> str:
    """``user@host`` of this CLI call, for the audit log."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for the uid (a bare container)
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"[:64]


def _load_credentials(
    cert_path: Path, key_path: Path
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise LifecertError(
            f"--staff-cert: cannot read a PEM certificate from {cert_path}: {exc}"
        ) from None
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise LifecertError(
            f"--staff-key: cannot read a PEM private key from {key_path}: {exc}"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise LifecertError(f"--staff-key: {key_path} is not an EC (P-256) private key")
    return cert, key


def require(state: State, permission: Permission) -> Actor:
    """The signed-in staff member if they hold ``permission``; a clear error for anonymous
    calls or the wrong role."""
    if not state.signed_in:
        if permission.value.endswith(".read"):
            raise LifecertError(f"this command shows staff-only data: {SIGN_IN}")
        raise LifecertError(f"this command changes data: {SIGN_IN}")
    return check(state.actor, permission)
