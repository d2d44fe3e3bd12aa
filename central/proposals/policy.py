"""A new version of the policy parameters, in force from a date (``policy``).

Payload: ``effective_from`` (ISO date, today or later in ``[policy] timezone``), ``params``
(``{name: value}`` of ``central.certification.versions.VERSIONED``), ``note``. The version
stored is complete: the policy in force on ``effective_from`` with ``params`` applied,
checked as ``[policy]`` is. Stale when any version was added since; refused on approval
once ``effective_from`` has passed (a version never applies backwards).
"""

import datetime as dt
import zoneinfo
from typing import Any

import pydantic
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from central.certification import versions
from central.certification.settings import Policy
from central.proposals.base import (
    Context,
    Kind,
    PayloadField,
    Prepared,
    ProposalError,
    digest,
    text,
)


def _fallback(ctx: Context) -> Policy:
    return ctx.resources.cfg.policy if ctx.resources else Policy()


def _today(ctx: Context, policy: Policy) -> dt.date:
    return ctx.now.astimezone(zoneinfo.ZoneInfo(policy.timezone)).date()


def _date(payload: dict[str, Any]) -> dt.date:
    try:
        return dt.date.fromisoformat(str(payload.get("effective_from")))
    except ValueError:
        raise ProposalError("effective_from: a date as YYYY-MM-DD") from None


def _checked(base: Policy, changes: dict[str, Any]) -> Policy:
    """``base`` with ``changes``, validated as ``[policy]`` is (``ProposalError`` naming the
    parameter)."""
    try:
        return Policy.model_validate(base.model_dump() | changes)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "params"
        raise ProposalError(f"{where}: {first['msg']}") from None


class PolicyVersion(Kind):
    """A new version of the versioned ``[policy]`` parameters."""

    name = "policy"
    fields = (
        PayloadField("effective_from", "In force from", "date", "today or later"),
        PayloadField(
            "validity_months",
            "Validity (months)",
            "number",
            "how long a pass certifies, 1-60; empty: as in force",
            required=False,
            group="params",
        ),
        PayloadField(
            "grace_days",
            "Grace (days)",
            "number",
            "days after certified_until before a payment run holds payment, 0-366; empty: as "
            "in force",
            required=False,
            group="params",
        ),
        PayloadField(
            "assisted_review_age",
            "Review assisted passes from age",
            "number",
            "an assisted pass of a retiree this old goes to review, 0-150; empty: as in force",
            required=False,
            group="params",
        ),
        PayloadField(
            "assisted_review_repeat",
            "Review a repeated assisted pass",
            "boolean",
            "an assisted pass right after another one of the same retiree goes to review",
            (("true", "yes"), ("false", "no")),
            required=False,
            group="params",
        ),
        PayloadField("note", "Why", "textarea", required=False, max_length=500),
    )
    """One optional field per ``versions.VERSIONED`` parameter (a unit test checks that)."""

    def prepare(self, conn: Connection, payload: dict[str, Any], ctx: Context) -> Prepared:
        fallback = _fallback(ctx)
        effective = _date(payload)
        today = _today(ctx, fallback)
        if effective < today:
            raise ProposalError(
                f"effective_from: {effective} has passed (today is {today}): a version never "
                "applies backwards"
            )
        changes = payload.get("params")
        if not isinstance(changes, dict) or not changes:
            raise ProposalError(f"params: at least one of {', '.join(versions.VERSIONED)}")
        unknown = sorted(set(changes) - set(versions.VERSIONED))
        if unknown:
            raise ProposalError(
                f"params: {', '.join(unknown)} cannot be versioned: use "
                f"{', '.join(versions.VERSIONED)}"
            )
        note = text(payload, "note", 500)
        base = versions.in_force(versions.history(conn), effective, fallback)
        new = _checked(base, changes)
        before, after = versions.params_of(base), versions.params_of(new)
        moved = {k: [before[k], after[k]] for k in versions.VERSIONED if before[k] != after[k]}
        if not moved:
            raise ProposalError(f"params: the policy in force on {effective} has these values")
        what = "; ".join(f"{k} {a} -> {b}" for k, (a, b) in moved.items())
        return Prepared(
            {
                "effective_from": effective.isoformat(),
                "params": after,
                "changes": moved,
                "note": note,
            },
            f"policy:{effective}",
            f"policy from {effective}: {what}"[:500],
        )

    def fingerprint(self, conn: Connection, proposal: Any) -> str:
        ids = conn.scalars(
            sa.select(versions.policy_versions.c.id).order_by(versions.policy_versions.c.id)
        ).all()
        return digest(list(ids))

    def apply(self, conn: Connection, proposal: Any, actor: str, ctx: Context) -> dict[str, Any]:
        p = proposal.payload
        effective = dt.date.fromisoformat(p["effective_from"])
        today = _today(ctx, _fallback(ctx))
        if effective < today:
            raise ProposalError(
                f"effective_from: {effective} passed before the approval (today is {today}): "
                "reject this proposal and propose the version again"
            )
        made = versions.add(conn, effective, p["params"], p["note"], proposal.id, actor, ctx.now)
        return {"version": made, "effective_from": p["effective_from"]}
