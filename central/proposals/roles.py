"""Who may take which step of a proposal: the permission and role of each level.

Level 1 enters a proposal (``proposal.enter``: entry clerk), the last level approves it
(``proposal.approve``: approver) and the levels between recheck it (``proposal.recheck``:
reviewer), as the staff room's one permission table says. Staff and role changes
(``central.proposals.staffing``) differ: an administrator (``staff.manage``) enters them and
every later level needs the role ``[proposals] staff_approver`` named when they were
entered (an administrator by default). A person acts on a proposal once at most, and the
person who entered it never rechecks or approves it (``workflow`` checks that, per item).
"""

from central.proposals.base import RefusedError
from central.staff.identity import Actor, Role
from central.staff.permissions import GRANTS, Permission, allowed

_STEP = {
    Permission.PROPOSAL_ENTER: "enter",
    Permission.PROPOSAL_RECHECK: "recheck",
    Permission.PROPOSAL_APPROVE: "approve",
}


def permission_for(level: int, levels: int) -> Permission:
    """What taking ``level`` (1-based) of a proposal needing ``levels`` people needs."""
    if level == 1:
        return Permission.PROPOSAL_ENTER
    return Permission.PROPOSAL_APPROVE if level == levels else Permission.PROPOSAL_RECHECK


def role_for(level: int, levels: int, staff_approver: Role | None = None) -> Role:
    """The role meant to take ``level``: entry clerk, reviewer or approver; for a staff
    change (``staff_approver`` given) an administrator enters and ``staff_approver`` decides."""
    if staff_approver is not None:
        return Role.ADMINISTRATOR if level == 1 else staff_approver
    return {
        Permission.PROPOSAL_ENTER: Role.ENTRY_CLERK,
        Permission.PROPOSAL_RECHECK: Role.REVIEWER,
        Permission.PROPOSAL_APPROVE: Role.APPROVER,
    }[permission_for(level, levels)]


def may(actor: Actor, level: int, levels: int, staff_approver: Role | None = None) -> bool:
    """Whether ``actor``'s roles hold the permission of ``level``."""
    if staff_approver is not None:
        if level == 1:
            return allowed(actor, Permission.STAFF_MANAGE)
        return staff_approver in actor.roles
    return allowed(actor, permission_for(level, levels))


def _step(level: int, levels: int) -> str:
    return "enter" if level == 1 else ("approve" if level == levels else "recheck")


def check(
    actor: Actor, kind: str, level: int, levels: int, staff_approver: Role | None = None
) -> Role:
    """The role ``actor`` takes ``level`` with; ``RefusedError`` when they lack it."""
    mine = ", ".join(sorted(actor.roles)) or "none"
    if staff_approver is not None:
        role = role_for(level, levels, staff_approver)
        if not may(actor, level, levels, staff_approver):
            raise RefusedError(
                f"{actor.staff_id} may not {_step(level, levels)} a {kind} proposal: that needs "
                f"the {role.value} role (theirs: {mine})"
            )
        return role
    permission = permission_for(level, levels)
    holding = sorted(r for r in actor.roles if permission in GRANTS[r])
    if not holding:
        role = role_for(level, levels)
        raise RefusedError(
            f"{actor.staff_id} may not {_STEP[permission]} a {kind} proposal: that needs the "
            f"{role.value} role ({permission.value}; theirs: {mine})"
        )
    return role_for(level, levels) if role_for(level, levels) in holding else holding[0]
