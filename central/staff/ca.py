"""The staff CA: staff client certificates, kept apart from the fleet's device CA.

``init`` makes the CA (P-256, its key written 0600), an empty CRL, and pins the CA's
certificate in the database: sign-in trusts the pinned certificate only, so a swapped
``ca.pem`` on disk lets nobody in. Certificates are recorded (serial, staff id,
fingerprint, validity) when issued; revoking one marks it in the database, which sign-in
reads, and rewrites the CRL file for the console's TLS handshake.
"""

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy.engine import Connection, Engine

from central.staff import accounts, audit
from central.staff.identity import Actor
from central.staff.permissions import Permission, check
from central.staff.settings import StaffSettings
from central.staff.tables import staff_ca, staff_certs
from common import keyfile
from common.errors import LifecertError
from protocol import signing

ORGANISATION = "lifecert staff"
URN_PREFIX = "urn:lifecert:staff:"
CA_DAYS = 3650


class CaError(LifecertError, ValueError):
    """The staff CA is missing, mismatched or refuses the request; the message says why."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def serial_hex(cert: x509.Certificate) -> str:
    """A certificate's serial as stored: lower-case hex without leading zeros."""
    return format(cert.serial_number, "x")


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, 0o600)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def pem(cert: x509.Certificate) -> bytes:
    """``cert`` as PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Authority:
    """The staff CA's certificate and key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def issue(
        self, staff_id: str, public_key: ec.EllipticCurvePublicKey, days: int
    ) -> x509.Certificate:
        """A clientAuth certificate for ``staff_id`` (its CN; SAN ``urn:lifecert:staff:ID``)."""
        now = _now()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
                x509.NameAttribute(NameOID.COMMON_NAME, staff_id),
            ]
        )
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(min(now + dt.timedelta(days=days), self.cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(f"{URN_PREFIX}{staff_id}")]
                ),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )

    def crl(self, revoked: list[tuple[int, dt.datetime]], days: int, number: int) -> bytes:
        """A PEM CRL listing ``(serial, revoked_at)``, valid ``days`` days."""
        now = _now() - dt.timedelta(minutes=5)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now)
            .next_update(now + dt.timedelta(days=days))
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .add_extension(x509.CRLNumber(number), critical=False)
        )
        for serial, when in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
            )
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def pinned(conn: Connection) -> x509.Certificate | None:
    """The staff CA certificate pinned in the database (None before ``init``)."""
    text = conn.scalar(sa.select(staff_ca.c.cert_pem).where(staff_ca.c.id == 1))
    return None if text is None else x509.load_pem_x509_certificate(text.encode())


def init(engine: Engine, settings: StaffSettings, name: str = "central") -> x509.Certificate:
    """Make the staff CA: files under [staff], an empty CRL, the pin in the database; and
    the key of second factors (``otp_key_file``) unless it exists."""
    for field, path in (("staff.ca_file", settings.ca_file), ("staff.ca_key", settings.ca_key)):
        if path.exists():
            raise CaError(f"{field}: {path} exists already: the staff CA is made once")
    with engine.begin() as conn:
        if pinned(conn) is not None:
            raise CaError("the database already pins a staff CA: it is made once")
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
                x509.NameAttribute(NameOID.COMMON_NAME, f"lifecert staff CA {name}"),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(ca=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        fingerprint = signing.cert_fingerprint(cert)
        conn.execute(
            staff_ca.insert().values(
                id=1, cert_pem=pem(cert).decode(), fingerprint=fingerprint, created_at=now
            )
        )
        audit.record(
            conn, audit.SYSTEM, "staff.ca_init", "staff-ca", None, {"fingerprint": fingerprint}
        )
        try:
            _write_private(settings.ca_key, key)
            _write_public(settings.ca_file, pem(cert))
            _write_public(settings.crl_file, Authority(cert, key).crl([], settings.crl_days, 1))
            if not settings.otp_key_file.exists():
                keyfile.write_key(settings.otp_key_file)
        except OSError as exc:
            raise CaError(
                "staff.ca_file / ca_key / crl_file / otp_key_file: cannot write "
                f"{exc.filename}: {exc.strerror}"
            ) from None
    return cert


def load(engine: Engine, settings: StaffSettings) -> Authority:
    """The staff CA from its files, checked against the database's pin."""
    try:
        cert = x509.load_pem_x509_certificate(settings.ca_file.read_bytes())
        key = serialization.load_pem_private_key(settings.ca_key.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise CaError(
            f"no staff CA at {exc.filename}: run `lifecert-central staff ca init`"
        ) from None
    except (OSError, ValueError) as exc:
        raise CaError(f"staff.ca_file / staff.ca_key: cannot load the staff CA: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CaError(f"staff.ca_key: {settings.ca_key} is not an EC private key")
    with engine.connect() as conn:
        pin = pinned(conn)
    if pin is None or pin != cert:
        raise CaError("staff.ca_file is not the staff CA this database pins: check [staff]")
    if key.public_key() != cert.public_key():
        raise CaError("staff.ca_key does not belong to staff.ca_file")
    return Authority(cert, key)


@dataclass(frozen=True)
class Issued:
    """A new staff certificate and the private key made for it (handed out once, never
    stored); no key when the member sent a certificate request (``request_key``)."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey | None

    def key_pem(self) -> bytes:
        if self.key is None:
            raise CaError("the member holds this certificate's key (it came with the request)")
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def request_key(pem_data: bytes) -> ec.EllipticCurvePublicKey:
    """The public key of a PEM certificate request (CSR) signed by its own P-256 key, or
    ``CaError``: the member made the key and keeps it."""
    try:
        csr = x509.load_pem_x509_csr(pem_data)
    except ValueError as exc:
        raise CaError(f"--csr: not a PEM certificate request: {exc}") from None
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise CaError("--csr: the request's key is not a P-256 (secp256r1) key")
    if not csr.is_signature_valid:
        raise CaError("--csr: the request is not signed by its own key")
    return key


def _issue(
    conn: Connection,
    authority: Authority,
    by: Actor,
    staff_id: str,
    days: int,
    public_key: ec.EllipticCurvePublicKey | None = None,
) -> Issued:
    account = accounts.need(conn, staff_id)
    if not account.active:
        raise CaError(f"{staff_id} is not active: no certificate for them")
    key = None
    if public_key is None:
        key = ec.generate_private_key(ec.SECP256R1())
        public_key = key.public_key()
    cert = authority.issue(staff_id, public_key, days)
    row = {
        "serial": serial_hex(cert),
        "staff_id": staff_id,
        "fingerprint": signing.cert_fingerprint(cert),
        "not_before": cert.not_valid_before_utc,
        "not_after": cert.not_valid_after_utc,
        "issued_at": dt.datetime.now(dt.UTC),
        "issued_by": by.staff_id,
    }
    conn.execute(staff_certs.insert().values(**row))
    audit.record(
        conn,
        by,
        "staff.cert_issue",
        f"staff:{staff_id}",
        None,
        {k: row[k] for k in ("serial", "fingerprint", "not_after")},
    )
    return Issued(cert, key)


def issue(
    engine: Engine,
    settings: StaffSettings,
    by: Actor,
    staff_id: str,
    days: int | None = None,
    public_key: ec.EllipticCurvePublicKey | None = None,
) -> Issued:
    """A certificate for ``staff_id`` (``by`` needs ``staff.certs``): for ``public_key``
    (from the member's request), else for a key made here and handed out with it."""
    check(by, Permission.STAFF_CERTS)
    authority = load(engine, settings)
    with engine.begin() as conn:
        return _issue(conn, authority, by, staff_id, days or settings.cert_days, public_key)


def issue_approved(
    engine: Engine,
    settings: StaffSettings,
    by: Actor,
    staff_id: str,
    days: int,
    public_key: ec.EllipticCurvePublicKey,
) -> x509.Certificate:
    """A certificate for ``public_key`` of ``staff_id``, issued because a proposal was
    approved (``by`` approved it; no permission check here: the workflow made it)."""
    authority = load(engine, settings)
    with engine.begin() as conn:
        return _issue(conn, authority, by, staff_id, days, public_key).cert


def bootstrap(
    engine: Engine, settings: StaffSettings, staff_id: str, name: str, up_to: int = 1
) -> Issued:
    """One of the first ``up_to`` administrators' account and certificate, in one
    transaction (``staff add --first-admin``; see ``accounts.add_first_admin``)."""
    authority = load(engine, settings)
    with engine.begin() as conn:
        accounts.add_first_admin(conn, staff_id, name, up_to)
        return _issue(
            conn, authority, Actor("bootstrap", frozenset()), staff_id, settings.cert_days
        )


def list_certs(engine: Engine, staff_id: str | None = None) -> list[dict[str, Any]]:
    """Issued certificates (newest first), optionally of one staff member."""
    query = sa.select(staff_certs).order_by(staff_certs.c.issued_at.desc())
    if staff_id is not None:
        query = query.where(staff_certs.c.staff_id == staff_id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def write_crl(conn: Connection, authority: Authority, settings: StaffSettings) -> int:
    """Rewrite the CRL file from the database's revoked certificates; how many it lists."""
    rows = conn.execute(
        sa.select(staff_certs.c.serial, staff_certs.c.revoked_at).where(
            staff_certs.c.revoked_at.is_not(None)
        )
    ).all()
    revoked = [(int(r.serial, 16), r.revoked_at) for r in rows]
    number = int(dt.datetime.now(dt.UTC).timestamp())  # increases with every rewrite
    try:
        _write_public(settings.crl_file, authority.crl(revoked, settings.crl_days, number))
    except OSError as exc:
        raise CaError(f"staff.crl_file: cannot write {exc.filename}: {exc.strerror}") from None
    return len(revoked)


def revoke(
    engine: Engine, settings: StaffSettings, by: Actor, serial: str, reason: str = ""
) -> dict[str, Any]:
    """Revoke the certificate ``serial`` (hex) and rewrite the CRL (needs ``staff.certs``)."""
    check(by, Permission.STAFF_CERTS)
    serial = serial.lower().removeprefix("0x").lstrip("0") or "0"
    authority = load(engine, settings)
    with engine.begin() as conn:
        row = conn.execute(sa.select(staff_certs).where(staff_certs.c.serial == serial)).first()
        if row is None:
            raise CaError(f"no staff certificate with serial {serial}: see `staff cert list`")
        if row.revoked_at is not None:
            raise CaError(f"certificate {serial} was revoked already ({row.revoked_at:%Y-%m-%d})")
        now = dt.datetime.now(dt.UTC)
        conn.execute(
            staff_certs.update()
            .where(staff_certs.c.serial == serial)
            .values(revoked_at=now, revoked_by=by.staff_id, revoke_reason=reason[:200] or None)
        )
        audit.record(
            conn,
            by,
            "staff.cert_revoke",
            f"staff:{row.staff_id}",
            {"serial": serial},
            {"serial": serial, "revoked": True, "reason": reason},
        )
        write_crl(conn, authority, settings)
        return dict(row._mapping) | {"revoked_at": now}


def refresh_crl(engine: Engine, settings: StaffSettings) -> int:
    """Re-sign the CRL (before it expires); how many certificates it lists."""
    authority = load(engine, settings)
    with engine.connect() as conn:
        return write_crl(conn, authority, settings)
