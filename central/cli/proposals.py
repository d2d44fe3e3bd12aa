"""Commands of central's proposals room: ``proposals list/show/recheck/approve/reject/resume``, and
``propose``, which the changing commands of the other rooms call (``roster import``,
``holds``, ``retirees change/certify``, ``bank make/send``)."""

import json
from typing import Any

import click

from central import proposals
from central.cli.context import State, require
from central.cli.output import emit
from central.proposals import Proposal
from central.proposals.staffing import STAFF_KINDS
from central.staff import otp
from central.staff.identity import Actor
from central.staff.permissions import Permission, allowed
from common.cli import friendly_errors
from common.errors import LifecertError

_ROLE_WORD = {
    "reviewer": "a reviewer",
    "approver": "an approver",
    "administrator": "an administrator",
}


def _waits(p: Proposal) -> str:
    if p.status == "applying" and p.apply_until is not None:
        return f"applying: by {p.apply_by}, lease until {p.apply_until:%Y-%m-%d %H:%M:%S} UTC"
    if p.next_action is None or p.next_role is None:
        return f"{p.status}" + (f": {p.reason}" if p.reason else "")
    return (
        f"waits for: {p.next_action} by {_ROLE_WORD.get(p.next_role.value, p.next_role.value)} "
        f"(level {p.done + 1} of {p.levels})"
    )


def propose(
    state: State,
    kind: str,
    payload: dict[str, Any],
    permission: Permission = Permission.PROPOSAL_ENTER,
) -> Proposal:
    """Enter a proposal as the signed-in staff member and say what it waits for."""
    actor = require(state, permission)
    made = proposals.propose(state.engine(), actor, kind, payload, resources=state.central)
    click.echo(f"proposal {made.id}: {made.summary}")
    click.echo(_waits(made))
    return made


def _reader(state: State) -> bool:
    """Whether the signed-in member reads every proposal (``people.read``) rather than only
    staff changes (``staff.read``: administrators)."""
    actor = state.actor if state.signed_in else None
    if (
        actor
        and not allowed(actor, Permission.PEOPLE_READ)
        and allowed(actor, Permission.STAFF_READ)
    ):
        return False
    require(state, Permission.PEOPLE_READ)
    return True


def _acting(state: State, proposal_id: int, permission: Permission) -> Actor:
    """Who takes a step on ``proposal_id``: staff changes are checked per item by the
    workflow (their approver role is configured); other kinds need ``permission``."""
    if state.signed_in and proposals.show(state.engine(), proposal_id, 0).kind in STAFF_KINDS:
        return state.actor
    return require(state, permission)


def _row(p: Proposal) -> dict[str, Any]:
    return {
        "id": p.id,
        "kind": p.kind,
        "status": p.status,
        "level": f"{p.done}/{p.levels}",
        "waits_for": p.next_action and f"{p.next_action} ({p.next_role})",
        "created_by": p.created_by,
        "created_at": f"{p.created_at:%Y-%m-%d %H:%M}",
        "summary": p.summary,
    }


@click.group("proposals")
def proposals_group() -> None:
    """Changes to money or eligibility waiting for other people's recheck and approval.

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key proposals list
    """


@proposals_group.command("list")
@click.option("--all", "everything", is_flag=True, help="Every proposal, not only mine to do.")
@click.option(
    "--status",
    type=click.Choice(["open", "applying", "applied", "rejected", "stale", "failed"]),
    help="Only this status (with --all).",
)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_obj
@friendly_errors
def proposals_list(
    state: State, everything: bool, status: str | None, limit: int, as_json: bool
) -> None:
    """List the proposals waiting for a step you may take (oldest first), or --all.

    \b
    Example:
        lifecert-central proposals list --all --status open --json
    """
    every = _reader(state)
    actor = state.actor
    found = (
        proposals.list_all(state.engine(), status, limit, None if every else STAFF_KINDS)
        if everything
        else proposals.list_for(state.engine(), actor, limit)
    )
    rows = [_row(p) for p in found]
    emit(rows, as_json, ["id", "kind", "status", "level", "waits_for", "created_by", "summary"])


@proposals_group.command("show")
@click.argument("proposal_id", type=click.IntRange(1))
@click.option("--rows", default=20, show_default=True, type=click.IntRange(0, 10_000))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
@click.pass_obj
@friendly_errors
def proposals_show(state: State, proposal_id: int, rows: int, as_json: bool) -> None:
    """Show one proposal: what it changes (the diff of a roster), its steps, what it waits for.

    \b
    Example:
        lifecert-central proposals show 12 --rows 100
    """
    every = _reader(state)
    p = proposals.show(state.engine(), proposal_id, diff_rows=rows)
    if not every and p.kind not in STAFF_KINDS:
        raise LifecertError(
            f"proposal {proposal_id} is a {p.kind} proposal: administrators see staff changes only"
        )
    if as_json:
        data = _row(p) | {
            "payload": p.payload,
            "reason": p.reason,
            "result": p.result,
            "steps": [s.__dict__ for s in p.steps],
            "diff": p.diff and {**p.diff.__dict__, "rows": [r.__dict__ for r in p.diff.rows]},
        }
        emit(data, True, [])
        return
    click.echo(f"proposal {p.id}  {p.kind}  {p.status}  level {p.done} of {p.levels} done")
    click.echo(f"  {p.summary}")
    click.echo(f"  {_waits(p)}")
    for s in p.steps:
        why = f": {s.reason}" if s.reason else ""
        click.echo(
            f"  {s.at:%Y-%m-%d %H:%M} level {s.level} {s.action} by {s.staff_id} ({s.role}){why}"
        )
    if p.result:
        click.echo(f"  result: {json.dumps(p.result, default=str)}")
    if p.diff is not None:
        fields = ", ".join(f"{k} {n}" for k, n in sorted(p.diff.fields.items()))
        click.echo(f"diff: {p.diff.added} added, {p.diff.changed} changed; fields: {fields}")
        for r in p.diff.rows:
            if r.before is None:
                what = ", ".join(f"{k}={v}" for k, v in r.after.items() if k != "id_number")
            else:
                what = ", ".join(f"{k}: {r.before.get(k)} -> {v}" for k, v in r.after.items())
            click.echo(f"  line {r.line:<5} {r.retiree_id}  {r.change:7}  {what}")


def _step(
    state: State, action: str, proposal_id: int, reason: str, code: str | None = None
) -> None:
    engine = state.engine()
    central = state.central
    if action == "recheck":
        actor = _acting(state, proposal_id, Permission.PROPOSAL_RECHECK)
        done = proposals.recheck(engine, actor, proposal_id, reason, code=code, resources=central)
    elif action == "approve":
        actor = _acting(state, proposal_id, Permission.PROPOSAL_APPROVE)
        done = proposals.approve(engine, actor, proposal_id, reason, code=code, resources=central)
    else:  # a reviewer or an approver, whichever the next level needs (checked per item)
        if not state.signed_in:
            require(state, Permission.PROPOSAL_RECHECK)  # the message: sign in
        actor = state.actor
        done = proposals.reject(engine, actor, proposal_id, reason)
    past = {"recheck": "rechecked", "approve": "approved", "reject": "rejected"}[action]
    click.echo(f"proposal {done.id}: {past} by {actor.staff_id}; {_waits(done)}")
    if done.recovery_codes_left is not None:
        click.echo(f"a recovery code was used: {done.recovery_codes_left} left")
        low = otp.low_note(actor.staff_id, done.recovery_codes_left)
        if low:
            click.echo(f"warning: {low}")
    if done.result:
        click.echo(f"result: {json.dumps(done.result, default=str)}")


_REASON = click.option("--reason", default="", help="Why (kept with the step; required to reject).")
_OTP = click.option(
    "--otp",
    "code",
    metavar="CODE",
    help="Your authenticator app's current code, or one of your recovery codes: needed for "
    "[proposals] second_factor_kinds (bank make/send by default; enrol with `staff otp enrol`).",
)


@proposals_group.command("recheck")
@click.argument("proposal_id", type=click.IntRange(1))
@_REASON
@_OTP
@click.pass_obj
@friendly_errors
def proposals_recheck(state: State, proposal_id: int, reason: str, code: str | None) -> None:
    """Recheck a proposal someone else entered (reviewer).

    \b
    Example:
        lifecert-central proposals recheck 12 --reason "matches the signed form" --otp 492039
    """
    _step(state, "recheck", proposal_id, reason, code)


@proposals_group.command("approve")
@click.argument("proposal_id", type=click.IntRange(1))
@_REASON
@_OTP
@click.pass_obj
@friendly_errors
def proposals_approve(state: State, proposal_id: int, reason: str, code: str | None) -> None:
    """Approve a rechecked proposal (approver): it takes effect now.

    \b
    Example:
        lifecert-central proposals approve 12 --otp 492039
    """
    _step(state, "approve", proposal_id, reason, code)


@proposals_group.command("reject")
@click.argument("proposal_id", type=click.IntRange(1))
@click.option("--reason", required=True, help="Why it is rejected (kept, shown to all).")
@click.pass_obj
@friendly_errors
def proposals_reject(state: State, proposal_id: int, reason: str) -> None:
    """Reject a proposal at the step you may take; nothing changes.

    \b
    Example:
        lifecert-central proposals reject 12 --reason "the form is not signed"
    """
    _step(state, "reject", proposal_id, reason)


@proposals_group.command("resume")
@click.argument("proposal_id", type=click.IntRange(1), required=False)
@click.option("--all", "every", is_flag=True, help="Every applying proposal whose lease ran out.")
@click.pass_obj
@friendly_errors
def proposals_resume(state: State, proposal_id: int | None, every: bool) -> None:
    """Finish a proposal left applying by a crash (approver), once its lease ran out.

    A bank file already filed, or already sent, is recorded, not made or sent again;
    otherwise it is made or sent now. Exits 1 when any was refused or failed.

    \b
    Example:
        lifecert-central proposals resume 12
        lifecert-central proposals resume --all
    """
    if (proposal_id is not None) == every:
        raise click.UsageError("give a PROPOSAL_ID or --all (not both)")
    engine = state.engine()
    if proposal_id is not None:
        actor = _acting(state, proposal_id, Permission.PROPOSAL_APPROVE)
        done = proposals.resume(engine, actor, proposal_id, resources=state.central)
        click.echo(f"proposal {done.id}: resumed by {actor.staff_id}; {_waits(done)}")
        click.echo(f"result: {json.dumps(done.result, default=str)}")
        return
    if not state.signed_in:
        require(state, Permission.PROPOSAL_APPROVE)  # the message: sign in
    failed = 0
    for number, outcome in proposals.resume_due(engine, state.actor, resources=state.central):
        if isinstance(outcome, Proposal):
            click.echo(f"proposal {number}: {_waits(outcome)}")
        else:
            failed += 1
            click.echo(f"proposal {number}: not resumed: {outcome}")
    if failed:
        raise LifecertError(f"{failed} proposal(s) not resumed (above)")


COMMANDS = (proposals_group,)
