"""Who may take which step of a proposal: the permission and role of each level.

Level 1 enters a proposal (``proposal.enter``: entry clerk), the last level approves it
(``proposal.approve``: approver) and the levels between recheck it (``proposal.recheck``:
reviewer), as the staff room's one permission table says. A person acts on a proposal
once at most, and the person who entered it never rechecks or approves it (``workflow``
checks that, per item).
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


def role_for(level: int, levels: int) -> Role:
    """The role meant to take ``level``: entry clerk, reviewer or approver."""
    return {
        Permission.PROPOSAL_ENTER: Role.ENTRY_CLERK,
        Permission.PROPOSAL_RECHECK: Role.REVIEWER,
        Permission.PROPOSAL_APPROVE: Role.APPROVER,
    }[permission_for(level, levels)]


def may(actor: Actor, level: int, levels: int) -> bool:
    """Whether ``actor``'s roles hold the permission of ``level``."""
    return allowed(actor, permission_for(level, levels))


def check(actor: Actor, kind: str, level: int, levels: int) -> Role:
    """The role ``actor`` takes ``level`` with; ``RefusedError`` when they lack it."""
    permission = permission_for(level, levels)
    holding = sorted(r for r in actor.roles if permission in GRANTS[r])
    if not holding:
        role = role_for(level, levels)
        raise RefusedError(
            f"{actor.staff_id} may not {_STEP[permission]} a {kind} proposal: that needs the "
            f"{role.value} role ({permission.value}; theirs: "
            f"{', '.join(sorted(actor.roles)) or 'none'})"
        )
    return role_for(level, levels) if role_for(level, levels) in holding else holding[0]
