"""Staff accounts: who they are, their roles, where they may act, lockout.

Every change is made by a signed-in actor holding ``staff.manage`` and lands in the audit
chain in the same transaction. Staff and role changes that give or restore access (add,
grant, revoke a role, activate, deactivate) reach users only as proposals approved by a
second person (``central.proposals.staffing``: ``insert``, ``granted``, ``revoked`` and
``change`` are what those apply); ``lock`` and ``unlock`` stay direct. Separation of
duties holds across roles: an administrator or an auditor holds no other role (so never
one that moves money or eligibility), and nobody changes their own roles or unlocks
themself.
"""

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from central.staff import audit
from central.staff.identity import Actor, Role
from central.staff.permissions import Permission, check
from central.staff.tables import staff, staff_otp
from common.errors import LifecertError
from protocol import topics

STAFF_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_COMMUNITY_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,100}$")
DEFAULT_MAX_FAILED = 5

_INDEPENDENT = frozenset({Role.ADMINISTRATOR, Role.AUDITOR})


class StaffError(LifecertError, ValueError):
    """A staff account change that cannot be made; the message says why and what to do."""


@dataclass(frozen=True)
class Account:
    """One staff account as stored."""

    staff_id: str
    name: str
    roles: frozenset[Role]
    communities: frozenset[str]
    sites: frozenset[str]
    active: bool
    failed_logins: int
    locked: bool
    created_at: dt.datetime
    updated_at: dt.datetime

    def actor(self, via: str, address: str | None, cert_serial: str | None) -> Actor:
        """This account signed in ``via`` from ``address`` with certificate ``cert_serial``."""
        return Actor(self.staff_id, self.roles, self.communities, via, address, cert_serial)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able, for output and the audit log."""
        return {
            "staff_id": self.staff_id,
            "name": self.name,
            "roles": sorted(self.roles),
            "communities": sorted(self.communities),
            "sites": sorted(self.sites),
            "active": self.active,
            "failed_logins": self.failed_logins,
            "locked": self.locked,
        }


def check_staff_id(staff_id: str) -> str:
    """``staff_id`` if well formed, else ``StaffError`` with the rule."""
    if not STAFF_ID_RE.match(staff_id):
        raise StaffError(
            f"staff id {staff_id!r}: use 1-64 of a-z 0-9 . _ - starting with a letter or digit"
        )
    return staff_id


def _check_roles(roles: frozenset[Role]) -> None:
    if not roles:
        raise StaffError("give at least one role (--role)")
    for role in roles & _INDEPENDENT:
        clash = roles - {role}
        if clash:
            raise StaffError(
                f"role {role.value} cannot be combined with {', '.join(sorted(clash))}: "
                "separation of duties (use a second account)"
            )


def _check_names(values: Iterable[str], what: str, site: bool = False) -> frozenset[str]:
    out = frozenset(values)
    for value in out:
        ok = topics.SITE_RE.match(value) if site else _COMMUNITY_RE.match(value)
        if not ok:
            raise StaffError(f"{what} {value!r} is not a valid {what} name")
    return out


def _row_to_account(row: Any) -> Account:
    return Account(
        staff_id=row.staff_id,
        name=row.name,
        roles=frozenset(Role(r) for r in row.roles),
        communities=frozenset(row.communities),
        sites=frozenset(row.sites),
        active=row.active,
        failed_logins=row.failed_logins,
        locked=row.locked,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _get(conn: Connection, staff_id: str, for_update: bool = False) -> Account | None:
    query = sa.select(staff).where(staff.c.staff_id == staff_id)
    row = conn.execute(query.with_for_update() if for_update else query).first()
    return None if row is None else _row_to_account(row)


def need(conn: Connection, staff_id: str, for_update: bool = False) -> Account:
    """The account ``staff_id`` (its row locked until the transaction ends if
    ``for_update``), or ``StaffError`` saying how to find the right id."""
    account = _get(conn, staff_id, for_update)
    if account is None:
        raise StaffError(f"no staff member {staff_id!r}: see `lifecert-central staff list`")
    return account


def get_in(conn: Connection, staff_id: str) -> Account | None:
    """The account ``staff_id`` in ``conn``'s transaction, or None."""
    return _get(conn, staff_id)


def get(engine: Engine, staff_id: str) -> Account | None:
    """The account ``staff_id``, or None."""
    with engine.connect() as conn:
        return _get(conn, staff_id)


def list_accounts(engine: Engine) -> list[Account]:
    """Every account, by staff id."""
    with engine.connect() as conn:
        return [_row_to_account(r) for r in conn.execute(sa.select(staff).order_by("staff_id"))]


def check_new(
    conn: Connection,
    staff_id: str,
    name: str,
    roles: Iterable[Role | str],
    communities: Iterable[str],
    sites: Iterable[str],
) -> str:
    """The cleaned name if an account ``staff_id`` may be made so, else ``StaffError``."""
    check_staff_id(staff_id)
    name = name.strip()
    if not 1 <= len(name) <= 100 or not name.isprintable():
        raise StaffError("name: 1-100 printable characters")
    wanted = frozenset(Role(r) for r in roles)
    _check_roles(wanted)
    communities, sites = check_names(communities, sites)
    if Role.COORDINATOR in wanted and not communities:
        raise StaffError("a coordinator needs at least one --community")
    if _get(conn, staff_id) is not None:
        raise StaffError(f"staff member {staff_id!r} already exists")
    return name


def _insert(
    conn: Connection,
    by: Actor,
    staff_id: str,
    name: str,
    roles: frozenset[Role],
    communities: frozenset[str],
    sites: frozenset[str],
) -> Account:
    name = check_new(conn, staff_id, name, roles, communities, sites)
    now = dt.datetime.now(dt.UTC)
    conn.execute(
        staff.insert().values(
            staff_id=staff_id,
            name=name,
            roles=sorted(roles),
            communities=sorted(communities),
            sites=sorted(sites),
            active=True,
            failed_logins=0,
            locked=False,
            created_at=now,
            updated_at=now,
        )
    )
    account = need(conn, staff_id)
    audit.record(conn, by, "staff.add", f"staff:{staff_id}", None, account.as_dict())
    return account


def add(
    engine: Engine,
    by: Actor,
    staff_id: str,
    name: str,
    roles: Iterable[Role],
    communities: Iterable[str] = (),
    sites: Iterable[str] = (),
) -> Account:
    """Create an account (``by`` needs ``staff.manage``)."""
    check(by, Permission.STAFF_MANAGE)
    with engine.begin() as conn:
        return _insert(
            conn,
            by,
            staff_id,
            name,
            frozenset(roles),
            _check_names(communities, "community"),
            _check_names(sites, "site", site=True),
        )


def add_first_admin(conn: Connection, staff_id: str, name: str, up_to: int = 1) -> Account:
    """One of the first ``up_to`` administrators, made by whoever holds the config (and so
    the staff CA's key): only while every account is such an administrator and there are
    fewer than ``up_to`` (a staff change needs ``[proposals] staff_change`` different
    administrators, so the first ones cannot be proposals). In the caller's transaction
    (see ``ca.bootstrap``)."""
    audit.lock(conn)  # two bootstraps at once: the second sees the first's account
    rows = conn.execute(sa.select(staff.c.roles)).all()
    others = any(list(r.roles) != [Role.ADMINISTRATOR.value] for r in rows)
    if others or len(rows) >= up_to:
        raise StaffError(
            "staff accounts exist already: an administrator proposes new ones "
            "(`staff add` signed in with --staff-cert/--staff-key; another approves)"
        )
    bootstrap = Actor("bootstrap", frozenset(), via="cli")
    return _insert(
        conn, bootstrap, staff_id, name, frozenset({Role.ADMINISTRATOR}), frozenset(), frozenset()
    )


def _update(conn: Connection, by: Actor, account: Account, action: str, **values: Any) -> Account:
    conn.execute(
        staff.update()
        .where(staff.c.staff_id == account.staff_id)
        .values(updated_at=dt.datetime.now(dt.UTC), **values)
    )
    after = need(conn, account.staff_id)
    audit.record(conn, by, action, f"staff:{account.staff_id}", account.as_dict(), after.as_dict())
    return after


def _not_self(by: Actor, staff_id: str, what: str) -> None:
    if by.staff_id == staff_id:
        raise StaffError(f"nobody may {what} their own account: ask another administrator")


def check_names(communities: Iterable[str], sites: Iterable[str]) -> tuple[frozenset[str], ...]:
    """``communities`` and ``sites`` if well formed, else ``StaffError``."""
    return _check_names(communities, "community"), _check_names(sites, "site", site=True)


def insert(
    conn: Connection,
    by: Actor,
    staff_id: str,
    name: str,
    roles: Iterable[Role],
    communities: Iterable[str] = (),
    sites: Iterable[str] = (),
) -> Account:
    """Create an account in ``conn``'s transaction (an approved proposal; no permission check)."""
    return _insert(conn, by, staff_id, name, frozenset(roles), *check_names(communities, sites))


def granted(account: Account, role: Role, communities: Iterable[str] = ()) -> dict[str, Any]:
    """The roles and communities ``account`` has after being given ``role``; ``StaffError``
    when the result breaks a rule."""
    roles = account.roles | {role}
    _check_roles(roles)
    every = account.communities | _check_names(communities, "community")
    if role is Role.COORDINATOR and not every:
        raise StaffError("a coordinator needs at least one --community")
    return {"roles": sorted(roles), "communities": sorted(every)}


def revoked(account: Account, role: Role) -> dict[str, Any]:
    """The roles and communities ``account`` has after losing ``role`` (the last role cannot
    go: deactivate or lock the account instead)."""
    if role not in account.roles:
        raise StaffError(f"{account.staff_id} does not hold {role.value}")
    roles = account.roles - {role}
    if not roles:
        raise StaffError(
            f"{role.value} is {account.staff_id}'s last role: lock or deactivate the account"
        )
    communities = account.communities if Role.COORDINATOR in roles else frozenset()
    return {"roles": sorted(roles), "communities": sorted(communities)}


def change(conn: Connection, by: Actor, staff_id: str, action: str, **values: Any) -> Account:
    """Set ``values`` on ``staff_id``'s row in ``conn``'s transaction, audited as ``action``
    (an approved proposal; no permission check)."""
    return _update(conn, by, need(conn, staff_id, for_update=True), action, **values)


def grant(
    engine: Engine, by: Actor, staff_id: str, role: Role, communities: Iterable[str] = ()
) -> Account:
    """Give ``staff_id`` ``role`` (a coordinator's communities added too)."""
    check(by, Permission.STAFF_MANAGE)
    _not_self(by, staff_id, "change the roles of")
    with engine.begin() as conn:
        account = need(conn, staff_id, for_update=True)
        return _update(conn, by, account, "staff.grant", **granted(account, role, communities))


def revoke_role(engine: Engine, by: Actor, staff_id: str, role: Role) -> Account:
    """Take ``role`` from ``staff_id`` (the last role cannot go: lock the account instead)."""
    check(by, Permission.STAFF_MANAGE)
    _not_self(by, staff_id, "change the roles of")
    with engine.begin() as conn:
        account = need(conn, staff_id, for_update=True)
        return _update(conn, by, account, "staff.revoke_role", **revoked(account, role))


def lock(engine: Engine, by: Actor, staff_id: str) -> Account:
    """Lock ``staff_id`` out (their certificates stop signing in) until unlocked."""
    check(by, Permission.STAFF_MANAGE)
    _not_self(by, staff_id, "lock")
    with engine.begin() as conn:
        return _update(conn, by, need(conn, staff_id, for_update=True), "staff.lock", locked=True)


def unlock(engine: Engine, by: Actor, staff_id: str) -> Account:
    """Unlock ``staff_id`` and clear their failed sign-ins and second-factor codes (an
    administrator, not themself)."""
    check(by, Permission.STAFF_MANAGE)
    _not_self(by, staff_id, "unlock")
    with engine.begin() as conn:
        after = _update(
            conn,
            by,
            need(conn, staff_id, for_update=True),
            "staff.unlock",
            locked=False,
            failed_logins=0,
        )
        conn.execute(staff_otp.update().where(staff_otp.c.staff_id == staff_id).values(failed=0))
        return after


def set_active(engine: Engine, by: Actor, staff_id: str, active: bool) -> Account:
    """Deactivate an account (someone who left: it never signs in again, and leaves every
    staff directory) or activate it again."""
    check(by, Permission.STAFF_MANAGE)
    _not_self(by, staff_id, "deactivate or activate")
    action = "staff.activate" if active else "staff.deactivate"
    with engine.begin() as conn:
        return _update(conn, by, need(conn, staff_id, for_update=True), action, active=active)


@dataclass(frozen=True)
class AssistRefusal:
    """Why a staff member may not certify at a site: a reason code and a sentence."""

    code: str  # staff_unknown / staff_inactive / staff_locked / staff_not_at_site
    detail: str


def assist_refusal(conn: Connection, staff_id: str, site: str) -> AssistRefusal | None:
    """Why ``staff_id`` may not have assisted a certification at a terminal of ``site``
    (for ingest to quarantine the result), or None when they may."""
    account = _get(conn, staff_id) if STAFF_ID_RE.match(staff_id) else None
    if account is None:
        return AssistRefusal("staff_unknown", f"no staff member {staff_id[:64]!r} at central")
    if not account.active:
        return AssistRefusal("staff_inactive", f"{staff_id}'s account is not active")
    if account.locked:
        return AssistRefusal("staff_locked", f"{staff_id}'s account is locked")
    if site not in account.sites:
        return AssistRefusal("staff_not_at_site", f"{staff_id} may not assist at site {site!r}")
    return None


def record_failed_login(
    engine: Engine,
    staff_id: str,
    *,
    limit: int = DEFAULT_MAX_FAILED,
    via: str = "console",
    address: str | None = None,
    reason: str = "",
) -> bool:
    """Count a failed sign-in of ``staff_id``; lock the account at ``limit`` failures in
    a row ([staff] max_failed_logins). Whether the account is now locked."""
    with engine.begin() as conn:
        return count_failure(conn, staff_id, limit=limit, via=via, address=address, reason=reason)


def count_failure(
    conn: Connection,
    staff_id: str,
    *,
    limit: int,
    via: str,
    address: str | None,
    reason: str,
    streak: int = 0,
) -> bool:
    """``record_failed_login`` in ``conn``'s transaction; ``streak``: failures of another
    kind in a row that a good sign-in does not clear (wrong second-factor codes), which lock
    the account at ``limit`` too. Whether the account is now locked."""
    account = _get(conn, staff_id, for_update=True)
    if account is None:
        return False
    failed = account.failed_logins + 1
    locks = max(failed, streak) >= limit
    values: dict[str, Any] = {"failed_logins": failed}
    if locks:
        values["locked"] = True
    who = Actor(staff_id, account.roles, via=via, address=address)
    _update(conn, who, account, "staff.signin_failed", **values)
    if locks and not account.locked:
        audit.record(
            conn,
            who,
            "staff.locked_out",
            f"staff:{staff_id}",
            None,
            {"failed_logins": failed, "reason": reason},
        )
    return locks


def signed_in(conn: Connection, account: Account) -> None:
    """Reset the failed sign-in count after a good sign-in."""
    if account.failed_logins:
        conn.execute(
            staff.update().where(staff.c.staff_id == account.staff_id).values(failed_logins=0)
        )
