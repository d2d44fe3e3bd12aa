"""Who may do what: every permission and the roles that hold it, in one table.

Roles are least-privilege. The administrator manages accounts, roles and staff
certificates but never money or eligibility; the auditor reads everything, the audit log
included, and changes nothing; a coordinator reads only their own communities (the rooms
filter by ``scope``). Conflicting duties on one item (the person who entered a change
rechecking or approving it) are refused by the proposals room, per item.
"""

from enum import StrEnum

from central.staff.identity import Actor, Role
from common.errors import LifecertError


class Permission(StrEnum):
    """One thing a staff member may do."""

    PEOPLE_READ = "people.read"  # retirees, roster, coverage, registries
    RESULTS_READ = "results.read"  # certifications, quarantine, review queues
    PAYMENTS_READ = "payments.read"  # payment runs, lines, bank files
    FRAUD_READ = "fraud.read"  # fraud flags
    DASHBOARD_READ = "dashboard.read"
    STAFF_READ = "staff.read"  # staff accounts and certificates
    AUDIT_READ = "audit.read"  # the audit log: verify, export
    PROPOSAL_ENTER = "proposal.enter"  # initial entry of a change to money or eligibility
    PROPOSAL_RECHECK = "proposal.recheck"
    PROPOSAL_APPROVE = "proposal.approve"
    REVIEW_DECIDE = "review.decide"  # decide review-queue items (referred, flags, quarantine)
    STAFF_MANAGE = "staff.manage"  # accounts, roles, lock/unlock
    STAFF_CERTS = "staff.certs"  # issue and revoke staff certificates


_READ_WORK = frozenset(
    {
        Permission.PEOPLE_READ,
        Permission.RESULTS_READ,
        Permission.PAYMENTS_READ,
        Permission.FRAUD_READ,
        Permission.DASHBOARD_READ,
    }
)

GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ENTRY_CLERK: _READ_WORK | {Permission.PROPOSAL_ENTER},
    Role.REVIEWER: _READ_WORK | {Permission.PROPOSAL_RECHECK, Permission.REVIEW_DECIDE},
    Role.APPROVER: _READ_WORK | {Permission.PROPOSAL_APPROVE, Permission.REVIEW_DECIDE},
    Role.COORDINATOR: frozenset(
        {Permission.PEOPLE_READ, Permission.RESULTS_READ, Permission.DASHBOARD_READ}
    ),
    Role.AUDITOR: _READ_WORK | {Permission.STAFF_READ, Permission.AUDIT_READ},
    Role.ADMINISTRATOR: frozenset(
        {Permission.STAFF_READ, Permission.STAFF_MANAGE, Permission.STAFF_CERTS}
    ),
}
"""The one role -> permission table; every check in every room reads it."""

MONEY_OR_ELIGIBILITY = frozenset(
    {
        Permission.PROPOSAL_ENTER,
        Permission.PROPOSAL_RECHECK,
        Permission.PROPOSAL_APPROVE,
        Permission.REVIEW_DECIDE,
    }
)
"""Permissions that change money or eligibility (never an administrator's or auditor's)."""


class NotPermittedError(LifecertError, PermissionError):
    """The actor's roles do not hold the permission; the message names both."""


def permissions(roles: frozenset[Role]) -> frozenset[Permission]:
    """Every permission the roles hold together."""
    return frozenset().union(*(GRANTS[role] for role in roles))


def allowed(actor: Actor, permission: Permission) -> bool:
    """Whether ``actor`` holds ``permission`` through one of their roles."""
    return any(permission in GRANTS[role] for role in actor.roles)


def check(actor: Actor, permission: Permission) -> Actor:
    """``actor`` if it holds ``permission``, else ``NotPermittedError`` naming who needs what."""
    if not allowed(actor, permission):
        holders = ", ".join(sorted(r.value for r, p in GRANTS.items() if permission in p))
        mine = ", ".join(sorted(r.value for r in actor.roles)) or "no role"
        raise NotPermittedError(
            f"{actor.staff_id} ({mine}) may not {permission.value}: that needs one of {holders}"
        )
    return actor


def scope(actor: Actor) -> frozenset[str] | None:
    """The communities ``actor`` may see: None for all, else their communities.

    Only a staff member whose every role is coordinator is limited: a coordinator who is
    also, say, an auditor reads everything through the auditor role.
    """
    if actor.roles and actor.roles <= {Role.COORDINATOR}:
        return actor.communities
    return None
