"""Who a staff certificate is: the console's one door to the staff room.

The TLS handshake has already checked the certificate against the staff CA and its CRL;
``central.staff.signin`` then checks it against the accounts (issued, not revoked, account
active and not locked; failures count toward lockout) and writes the sign-in to the audit
chain. ``still_valid`` re-checks a live session's certificate and account, so revoking or
locking takes effect within ``RECHECK`` without a restart.
"""

import datetime as dt

import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.engine import Engine

from central.staff import accounts, signin
from central.staff.identity import Actor, Role
from central.staff.tables import staff, staff_certs

SignInRefused = signin.SignInRefused
RECHECK = dt.timedelta(seconds=30)


def actor_for_certificate(
    engine: Engine,
    cert: x509.Certificate,
    *,
    via: str,
    address: str | None,
    max_failed_logins: int,
) -> Actor:
    """The signed-in staff member for ``cert`` (``SignInRefused`` naming why not)."""
    return signin.actor_for_certificate(
        engine, cert, via=via, address=address, max_failed_logins=max_failed_logins
    )


def still_valid(engine: Engine, actor: Actor) -> bool:
    """Whether ``actor``'s certificate is unrevoked and their account active and unlocked."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(staff_certs.c.revoked_at, staff.c.active, staff.c.locked)
            .select_from(staff_certs.join(staff, staff.c.staff_id == staff_certs.c.staff_id))
            .where(
                staff_certs.c.serial == (actor.cert_serial or ""),
                staff.c.staff_id == actor.staff_id,
            )
        ).first()
    return row is not None and row.revoked_at is None and row.active and not row.locked


def coordinators(engine: Engine) -> dict[str, frozenset[str]]:
    """Each active coordinator's communities (staff id -> communities)."""
    return {
        a.staff_id: a.communities
        for a in accounts.list_accounts(engine)
        if a.active and Role.COORDINATOR in a.roles
    }
