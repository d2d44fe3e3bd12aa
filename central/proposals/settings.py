"""The ``[proposals]`` section of ``central.toml``: how many people each kind of change needs.

A level is one person: level 1 enters the proposal (entry clerk), the last level approves
it (approver) and the levels between recheck it (reviewer). Two levels: entry and
approval; three: entry, recheck, approval.
"""

from typing import Literal

from pydantic import Field

from common.config import Section

KindName = Literal[
    "roster_import",
    "registry_import",
    "hold",
    "retiree_change",
    "certification",
    "bank_make",
    "bank_send",
    "assisted_review",
    "policy",
    "staff_add",
    "staff_grant",
    "staff_revoke_role",
    "staff_active",
    "staff_cert",
]
"""Every kind of proposal (``central.proposals.KINDS`` holds one handler for each)."""


def _levels(default: int, what: str) -> int:
    return Field(
        default=default,
        ge=2,
        le=5,
        title=f"{what} levels",
        description=f"how many different people a {what} proposal needs (2-5): entry, "
        "rechecks, approval",
    )


class ProposalSettings(Section):
    """People per kind of proposal; money-moving steps default to three."""

    roster_import: int = _levels(3, "roster import")
    registry_import: int = _levels(3, "death or prison registry import")
    hold: int = _levels(2, "manual hold or release")
    retiree_change: int = _levels(3, "amount or bank account change")
    bank_make: int = _levels(3, "payment run filing (bank file make)")
    bank_send: int = _levels(3, "bank file release (SFTP send)")
    certification: int = _levels(3, "manual certification")
    assisted_review: int = _levels(2, "decision on an assisted pass sent to review")
    policy: int = _levels(3, "policy parameter version")
    staff_change: int = _levels(2, "staff or role change (account, role, activation, certificate)")
    staff_approver: Literal["administrator", "approver", "reviewer"] = Field(
        default="administrator",
        title="staff change approver",
        description="the role that rechecks and approves staff and role changes (an "
        "administrator enters them; never the same person, never about their own account)",
    )
    apply_lease_s: int = Field(
        default=900,
        ge=1,
        le=86_400,
        title="apply lease (seconds)",
        description="how long applying a bank or certificate proposal may take before "
        "`proposals resume` may finish it instead (longer than writing the largest bank "
        "file or an SFTP upload's timeout)",
    )
    second_factor_kinds: tuple[KindName, ...] = Field(
        default=("bank_make", "bank_send"),
        title="kinds that need a second factor",
        description="kinds whose recheck and approval need a current TOTP code from the "
        "person deciding (`staff otp enrol`); the money-moving steps by default",
    )
    max_open: int = Field(
        default=10_000,
        ge=1,
        title="open proposals",
        description="at most this many proposals may wait at once (a flood is refused)",
    )
