"""Who a staff certificate is: the one place the console maps a certificate to an ``Actor``.

The TLS handshake has already checked the certificate against the staff CA and its CRL.
Until the staff room's accounts are on main this reads the certificate itself: CN = staff
id, OU = roles joined by ``+``, each L (locality) = a community a coordinator covers.
Swapping in ``central.staff.signin.actor_for_certificate`` is a change here only.
"""

import datetime as dt

from cryptography import x509
from cryptography.x509.oid import NameOID
from sqlalchemy.engine import Engine

from central.staff.identity import Actor, Role
from common.errors import LifecertError


class SignInRefused(LifecertError, PermissionError):  # noqa: N818 - the staff room's name
    """The certificate is valid but its holder may not sign in; the message says why."""


def _values(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(oid)]


def actor_for_certificate(
    engine: Engine, cert: x509.Certificate, *, via: str, address: str | None
) -> Actor:
    """The signed-in staff member for ``cert`` (``SignInRefused`` when none may sign in)."""
    del engine  # the staff room's accounts replace the certificate's own fields
    now = dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise SignInRefused("the certificate is not valid now: ask an administrator for a new one")
    names = _values(cert, NameOID.COMMON_NAME)
    if not names:
        raise SignInRefused("the certificate names no staff member (no CN)")
    roles: set[Role] = set()
    for unit in _values(cert, NameOID.ORGANIZATIONAL_UNIT_NAME):
        for part in unit.split("+"):
            try:
                roles.add(Role(part.strip()))
            except ValueError:
                raise SignInRefused(f"unknown role {part!r} in the certificate") from None
    if not roles:
        raise SignInRefused(f"{names[0]} holds no role: ask an administrator to grant one")
    return Actor(
        staff_id=names[0],
        roles=frozenset(roles),
        communities=frozenset(_values(cert, NameOID.LOCALITY_NAME)),
        via=via,
        address=address,
        cert_serial=format(cert.serial_number, "x"),
    )


def coordinators(engine: Engine) -> dict[str, frozenset[str]]:
    """Each coordinator's communities (staff id -> communities), for coverage per
    coordinator; none known until the staff room's accounts are on main."""
    del engine
    return {}
