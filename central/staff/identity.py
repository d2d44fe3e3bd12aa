"""Who is acting: a signed-in staff member and their roles (the contract every room uses).

Rooms that change money or eligibility take an ``Actor`` and ask it ``can(permission)``;
how an actor is made (a client certificate checked against the staff CA, the account's
lockout and roles) is the staff room's business, not theirs.
"""

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    """Least-privilege staff roles (issue 14)."""

    ENTRY_CLERK = "entry_clerk"  # initial entry of a proposal
    REVIEWER = "reviewer"  # recheck
    APPROVER = "approver"  # final approval
    COORDINATOR = "coordinator"  # sees only their communities
    AUDITOR = "auditor"  # read-only everything, including the audit log
    ADMINISTRATOR = "administrator"  # accounts and roles, never money or eligibility


@dataclass(frozen=True)
class Actor:
    """A signed-in staff member, as every room sees them.

    ``communities`` limits a coordinator's view (empty: no limit for other roles);
    ``via`` says how they signed in (``console``, ``api``, ``cli``) and ``address`` and
    ``cert_serial`` where from, for the audit log.
    """

    staff_id: str
    roles: frozenset[Role]
    communities: frozenset[str] = field(default_factory=frozenset)
    via: str = "cli"
    address: str | None = None
    cert_serial: str | None = None

    def has(self, role: Role) -> bool:
        """Whether the actor holds ``role``."""
        return role in self.roles
