"""The fleet's X.509 material: P-256 keys, the CA, leaf certificates and the CRL.

Everything is ECDSA P-256 with SHA-256 (what secure elements and TPMs speak).
Private keys are written PKCS#8 PEM, unencrypted, mode 0600: Mosquitto, paho
and the services read them as files (systemd credentials protect them there).
"""

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from common import durable
from provisioning.errors import ProvisioningError

Key = ec.EllipticCurvePrivateKey

URN_PREFIX = "urn:lifecert:"


def new_key() -> Key:
    """A fresh P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _name(common_name: str, organisation: str, unit: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation)]
    if unit is not None:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True)
class Authority:
    """The fleet CA: its certificate and private key."""

    cert: x509.Certificate
    key: Key

    @classmethod
    def create(cls, fleet_name: str, days: int) -> "Authority":
        """A self-signed CA for ``fleet_name`` valid ``days`` days, that may sign leaves only."""
        key = new_key()
        name = _name(f"lifecert fleet CA {fleet_name}", fleet_name)
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def load(cls, cert_path: Path, key_path: Path) -> "Authority":
        """Read the CA back from its PEM files."""
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ProvisioningError(f"{key_path}: not an EC private key")
        return cls(cert, key)

    @property
    def organisation(self) -> str:
        """The fleet name carried in the CA's O= attribute."""
        attrs = self.cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        return str(attrs[0].value) if attrs else ""

    def issue(
        self,
        common_name: str,
        public_key: ec.EllipticCurvePublicKey,
        days: int,
        *,
        server_names: Iterable[str] = (),
        client: bool = True,
        site: str | None = None,
    ) -> x509.Certificate:
        """A leaf certificate: clientAuth (devices, central) or serverAuth with SANs (broker).

        A client certificate also names itself in a SAN URI ``urn:lifecert:<CN>``
        (RFC 5280 path validators such as cryptography's want a SAN). A terminal's ``site``
        is its subject's organizational unit (OU), which central reads back.
        """
        now = _now()
        names = list(dict.fromkeys(server_names))
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        if names:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, self.organisation, site))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(min(now + dt.timedelta(days=days), self.cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        alt: list[x509.GeneralName] = [_general_name(n) for n in names] or [
            x509.UniformResourceIdentifier(f"{URN_PREFIX}{common_name}")
        ]
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def crl(
        self, revoked: Iterable[tuple[int, dt.datetime]], days: int, number: int = 1
    ) -> x509.CertificateRevocationList:
        """CRL number ``number`` listing ``(serial, revoked_at)`` pairs, valid ``days`` days.

        ``thisUpdate`` is back-dated five minutes, like ``notBefore`` on the
        certificates, so a verifier whose clock lags a little accepts it at once.
        """
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
        return builder.sign(self.key, hashes.SHA256())


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def write_private_key(path: Path, key: Key) -> None:
    """Write ``key`` as PKCS#8 PEM readable by its owner only (0600 from the first byte)."""
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, 0o600)


def write_public_key(path: Path, key: ec.EllipticCurvePublicKey) -> None:
    """Write a public key as SubjectPublicKeyInfo PEM."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def write_cert(path: Path, cert: x509.Certificate) -> None:
    """Write a certificate as PEM."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def write_crl(path: Path, crl: x509.CertificateRevocationList) -> None:
    """Write a CRL as PEM, atomically and durably (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    durable.write_atomic(path, crl.public_bytes(serialization.Encoding.PEM))


def load_cert(path: Path) -> x509.Certificate:
    """Read a PEM certificate."""
    return x509.load_pem_x509_certificate(path.read_bytes())


def load_crl(path: Path) -> x509.CertificateRevocationList:
    """Read a PEM CRL."""
    return x509.load_pem_x509_crl(path.read_bytes())


def crl_number(crl: x509.CertificateRevocationList) -> int:
    """The CRL's number (0 if it carries none)."""
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return 0


def common_name(cert: x509.Certificate) -> str:
    """The subject CN of ``cert``."""
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def pem(cert: x509.Certificate) -> str:
    """A certificate as PEM text."""
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
