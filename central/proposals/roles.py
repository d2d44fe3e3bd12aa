"""Who may take which step of a proposal: the role of each level.

Level 1 enters a proposal (entry clerk), the last level approves it (approver) and the
levels between recheck it (reviewer). A person acts on a proposal once at most, and the
person who entered it never rechecks or approves it (``workflow`` checks that).
"""

from central.proposals.base import RefusedError
from central.staff.identity import Actor, Role


def role_for(level: int, levels: int) -> Role:
    """The role that takes ``level`` (1-based) of a proposal needing ``levels`` people."""
    if level == 1:
        return Role.ENTRY_CLERK
    return Role.APPROVER if level == levels else Role.REVIEWER


def check(actor: Actor, kind: str, level: int, levels: int) -> Role:
    """The role ``actor`` takes ``level`` with; ``RefusedError`` when they lack it."""
    role = role_for(level, levels)
    if not actor.has(role):
        step = {Role.ENTRY_CLERK: "enter", Role.REVIEWER: "recheck", Role.APPROVER: "approve"}
        raise RefusedError(
            f"{actor.staff_id} may not {step[role]} a {kind} proposal: that needs the "
            f"{role.value} role (theirs: {', '.join(sorted(actor.roles)) or 'none'})"
        )
    return role
