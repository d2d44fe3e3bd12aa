"""Sign-in: from a staff client certificate to an ``Actor``, or a refusal with a reason.

The console calls ``actor_for_certificate`` with the certificate its TLS handshake
verified; the CLI calls it after the holder proved they have the key
(``prove_possession``). Either way the certificate must be issued by the staff CA pinned
in the database, recorded when issued, not revoked, within its validity, and its
account active and not locked. A refused certificate that is ours counts as a failed
sign-in of its account (``[staff] max_failed_logins`` in a row lock it); one that is not
ours counts against nobody, so a forged certificate naming an administrator cannot lock
them out.
"""

import datetime as dt
import os

import sqlalchemy as sa
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.engine import Engine

from central.staff import accounts, audit
from central.staff.ca import pinned, serial_hex
from central.staff.identity import Actor
from central.staff.tables import staff_certs
from common.errors import LifecertError
from protocol import signing


class SignInRefused(LifecertError, PermissionError):  # noqa: N818 - the name the rooms use
    """A sign-in was refused; ``reason`` says why (safe to show to the person)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"sign-in refused: {reason}")
        self.reason = reason


def _common_name(cert: x509.Certificate) -> str | None:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if len(names) == 1 else None


def actor_for_certificate(
    engine: Engine,
    cert: x509.Certificate,
    *,
    via: str,
    address: str | None,
    max_failed_logins: int = accounts.DEFAULT_MAX_FAILED,
    now: dt.datetime | None = None,
    record_signin: bool = True,
) -> Actor:
    """The staff member ``cert`` signs in, or ``SignInRefused(reason)``.

    A good sign-in is audited (``staff.signin``) unless ``record_signin`` is false: a
    console re-checking the certificate of a session on each request passes false and
    audits the sign-in that opened the session only.
    """
    now = now or dt.datetime.now(dt.UTC)
    with engine.connect() as conn:
        ca = pinned(conn)
        if ca is None:
            raise SignInRefused("no staff CA yet: run `lifecert-central staff ca init`")
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            raise SignInRefused("the certificate is not issued by the staff CA") from None
        serial = serial_hex(cert)
        row = conn.execute(sa.select(staff_certs).where(staff_certs.c.serial == serial)).first()
    if row is None or row.fingerprint != signing.cert_fingerprint(cert):
        raise SignInRefused(f"certificate {serial} was never issued to staff")
    if _common_name(cert) != row.staff_id:
        raise SignInRefused(f"certificate {serial} does not name its staff member")
    problem = None
    if row.revoked_at is not None:
        problem = f"certificate {serial} is revoked"
    elif not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        problem = f"certificate {serial} is expired or not yet valid"
    if problem is not None:
        accounts.record_failed_login(
            engine,
            row.staff_id,
            limit=max_failed_logins,
            via=via,
            address=address,
            reason=problem,
        )
        raise SignInRefused(problem)
    with engine.begin() as conn:
        account = accounts.need(conn, row.staff_id)
        if not account.active:
            raise SignInRefused(f"{account.staff_id}'s account is not active")
        if account.locked:
            raise SignInRefused(
                f"{account.staff_id}'s account is locked: an administrator must unlock it"
            )
        accounts.signed_in(conn, account)
        actor = account.actor(via, address, serial)
        if record_signin:
            audit.record(conn, actor, "staff.signin", f"staff:{account.staff_id}")
    return actor


def actor_for_key_holder(
    engine: Engine,
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    *,
    via: str,
    address: str | None,
    max_failed_logins: int = accounts.DEFAULT_MAX_FAILED,
) -> Actor:
    """Sign in the holder of ``cert`` and ``key`` (the CLI's way): proof of possession
    first (a wrong key for one of our certificates counts as a failed sign-in), then
    ``actor_for_certificate``."""
    try:
        prove_possession(cert, key)
    except SignInRefused as refused:
        with engine.connect() as conn:
            ca = pinned(conn)
            row = conn.execute(
                sa.select(staff_certs.c.staff_id).where(
                    staff_certs.c.fingerprint == signing.cert_fingerprint(cert)
                )
            ).first()
        if ca is not None and row is not None:
            accounts.record_failed_login(
                engine,
                row.staff_id,
                limit=max_failed_logins,
                via=via,
                address=address,
                reason=refused.reason,
            )
        raise
    return actor_for_certificate(
        engine, cert, via=via, address=address, max_failed_logins=max_failed_logins
    )


def prove_possession(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    """Sign a fresh nonce with ``key`` and verify it with ``cert``'s public key, or
    ``SignInRefused``: whoever presents a certificate must hold its key."""
    nonce = os.urandom(32)
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise SignInRefused("the certificate's key is not an EC (P-256) key")
    try:
        public.verify(key.sign(nonce, ec.ECDSA(hashes.SHA256())), nonce, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignInRefused("the key does not belong to the certificate") from None
