"""The staff directory central signs for a site: the active, unlocked staff allowed to
certify retirees at that site's terminal desks (their ``sites``), for a few days."""

import datetime as dt

from sqlalchemy.engine import Engine

from central.staff import accounts, audit
from central.staff.identity import Actor
from central.staff.permissions import Permission, check
from protocol import signing, staffdir, topics


def build(
    engine: Engine, site: str, days: int, now: dt.datetime | None = None
) -> staffdir.StaffDirectory:
    """The directory of ``site`` as the accounts stand now, valid ``days`` days."""
    try:
        topics.check_site(site)
    except ValueError as exc:
        raise accounts.StaffError(f"--site: {exc}") from None
    now = now or dt.datetime.now(dt.UTC)
    allowed = [
        staffdir.DirectoryEntry(staff_id=a.staff_id, name=a.name)
        for a in accounts.list_accounts(engine)
        if site in a.sites and a.active and not a.locked
    ]
    return staffdir.StaffDirectory(
        kind="staff_directory",
        site=site,
        issued_at=now,
        expires_at=now + dt.timedelta(days=days),
        staff=tuple(allowed),
    )


def publish(
    engine: Engine, by: Actor, signer: signing.Signer, site: str, days: int
) -> tuple[staffdir.StaffDirectory, str]:
    """Build and sign ``site``'s directory (``by`` needs ``staff.manage``), audited."""
    check(by, Permission.STAFF_MANAGE)
    directory = build(engine, site, days)
    token = staffdir.sign(directory, signer)
    with engine.begin() as conn:
        audit.record(
            conn,
            by,
            "staff.directory",
            f"site:{site}",
            None,
            {
                "staff": [e.staff_id for e in directory.staff],
                "expires_at": directory.expires_at.isoformat(),
            },
        )
    return directory, token
