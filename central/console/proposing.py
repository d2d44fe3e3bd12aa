"""The console's side of proposals (``central.proposals``): what a page or the API shows of
one, what it may do next, and payloads checked for what a browser may send."""

import dataclasses
import json
from typing import Any

from central.proposals import KINDS, Proposal, ProposalError
from central.proposals.roles import may
from central.proposals.workflow import staff_approver
from central.staff.identity import Actor

MAX_PAYLOAD = 200
"""Most characters of a payload's text fields shown in lists."""

PAYLOAD_HELP = {
    "roster_import": '{"partial": false} with the CSV file chosen below',
    "hold": '{"retiree_id": "...", "action": "place", "note": "why"}',
    "retiree_change": '{"retiree_id": "...", "monthly_amount": "2300.00", "note": "why"}',
    "certification": (
        '{"retiree_id": "...", "certified_until": "2027-06-30", "reason": "...", '
        '"evidence": "letter 2026/118"}'
    ),
    "bank_make": '{"period": "2026-12"}',
    "bank_send": '{"period": "2026-12"}',
    "assisted_review": '{"result_id": "...", "decision": "certify", "note": "why"}',
}


def payload_from(kind: str, text: str, csv_text: str | None) -> dict[str, Any]:
    """The payload a person entered: a JSON object, plus the uploaded CSV for a roster
    import. A server path is refused: the console never reads files its users name."""
    if kind not in KINDS:
        raise ProposalError(f"kind: {kind!r} is not a kind: use one of {', '.join(KINDS)}")
    try:
        payload = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ProposalError(f"payload: not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(payload, dict):
        raise ProposalError("payload: a JSON object, e.g. " + PAYLOAD_HELP.get(kind, "{}"))
    if _has_control(payload):
        raise ProposalError("payload: control characters (such as NUL) are not allowed")
    if "path" in payload:
        raise ProposalError("payload.path: upload the file's content instead of naming a path")
    if csv_text is not None:
        if kind != "roster_import":
            raise ProposalError("csv: only a roster import takes a file")
        payload["csv"] = csv_text
    return payload


def _has_control(value: Any) -> bool:
    """Whether a string anywhere in ``value`` holds a control character other than tab,
    newline or carriage return (a CSV keeps its line ends)."""
    if isinstance(value, str):
        return any((ord(c) < 32 and c not in "\t\n\r") or ord(c) == 127 for c in value)
    if isinstance(value, dict):
        return any(_has_control(k) or _has_control(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_control(v) for v in value)
    return False


def as_json(proposal: Proposal, actor: Actor) -> dict[str, Any]:
    """A proposal for the API: its fields, steps, diff and what ``actor`` may do next."""
    data = dataclasses.asdict(proposal)
    data["payload"] = {
        k: (v if not isinstance(v, str) or len(v) <= MAX_PAYLOAD else v[:MAX_PAYLOAD] + "…")
        for k, v in proposal.payload.items()
    }
    data["next_role"] = proposal.next_role.value if proposal.next_role else None
    data["next_action"] = proposal.next_action
    data["you_may"] = next_steps(proposal, actor)
    return data


def next_steps(proposal: Proposal, actor: Actor) -> list[str]:
    """The steps ``actor`` may take on ``proposal`` now (``recheck`` or ``approve``, and
    ``reject``); empty when it is decided, theirs, or already has their step."""
    if proposal.next_action is None or proposal.created_by == actor.staff_id:
        return []
    if any(step.staff_id == actor.staff_id for step in proposal.steps):
        return []
    approver = staff_approver(proposal.kind, proposal.payload)
    if approver is not None and proposal.target == actor.staff_id:
        return []  # a change to their own account
    if not may(actor, proposal.done + 1, proposal.levels, approver):
        return []
    return [proposal.next_action, "reject"]
