"""Proposals: every change to money or eligibility, entered, rechecked and approved by
different people before it takes effect (issue 14).

The API (``central.proposals.workflow``, re-exported here)::

    p = propose(engine, clerk, "hold", {"retiree_id": ..., "action": "place", "note": ...})
    recheck(engine, reviewer, p.id, "checked the letter")
    approve(engine, approver, p.id)          # applies it
    reject(engine, someone, p.id, "why")     # closes it, nothing changes
    resume(engine, approver, p.id)           # finishes one left applying by a crash
    list_for(engine, actor)                  # what waits for this person's role
    show(engine, p.id)                       # with steps and diff

Kinds: see ``KINDS`` and docs/proposals.md.
"""

from central.proposals.base import (
    ClosedError,
    NotFoundError,
    ProposalError,
    RefusedError,
    Resources,
    StaleError,
)
from central.proposals.workflow import (
    KINDS,
    Diff,
    Proposal,
    Step,
    approve,
    list_all,
    list_for,
    propose,
    recheck,
    reject,
    resume,
    resume_due,
    show,
)

__all__ = [
    "KINDS",
    "ClosedError",
    "Diff",
    "NotFoundError",
    "Proposal",
    "ProposalError",
    "RefusedError",
    "Resources",
    "StaleError",
    "Step",
    "approve",
    "list_all",
    "list_for",
    "propose",
    "recheck",
    "reject",
    "resume",
    "resume_due",
    "show",
]
