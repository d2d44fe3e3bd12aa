"""The console's side of proposals (``central.proposals``): what a page or the API shows of
one, what it may do next, who may enter which kind, payloads checked for what a browser may
send, and the per-kind forms made from each kind's ``fields``."""

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from central.console import access
from central.proposals import KINDS, Proposal, ProposalError
from central.proposals.base import PayloadField
from central.proposals.roles import may
from central.proposals.workflow import staff_approver
from central.staff import otp
from central.staff.identity import Actor, Role

MAX_PAYLOAD = 200
"""Most characters of a payload's text fields shown in lists."""


def payload_from(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """An API client's payload, checked for what a browser may send: a known kind, no
    control characters, no server path (the console never reads files its users name: a
    roster's or a registry's CSV comes as ``csv``, its text)."""
    if kind not in KINDS:
        raise ProposalError(f"kind: {kind!r} is not a kind: use one of {', '.join(KINDS)}")
    if _has_control(payload):
        raise ProposalError("payload: control characters (such as NUL) are not allowed")
    if "path" in payload:
        raise ProposalError("payload.path: upload the file's content instead of naming a path")
    return payload


def may_enter(actor: Actor, kind: str) -> bool:
    """Whether ``actor`` may enter a ``kind`` proposal: the ``proposal_enter`` entry of the
    access table (an administrator: staff kinds only) and the kind's first level."""
    handler = KINDS.get(kind)
    if handler is None or not access.allowed(actor, "proposal_enter"):
        return False
    if access.staff_only(actor, "proposal_enter") and not handler.about_staff:
        return False
    return may(actor, 1, 2, Role.ADMINISTRATOR if handler.about_staff else None)


def enterable(actor: Actor) -> list[str]:
    """The kinds ``actor`` may enter, in ``KINDS`` order."""
    return [kind for kind in KINDS if may_enter(actor, kind)]


def title(kind: str) -> str:
    """A kind's name for people: ``roster_import`` -> ``Roster import``."""
    return kind.replace("_", " ").capitalize()


def about(kind: str) -> str:
    """What a kind does, for its form: its docstring's first paragraph up to ``Payload:``."""
    text = (KINDS[kind].__doc__ or "").strip().split("\n\n")[0].split("Payload:")[0]
    return " ".join(text.replace("``", "").split())


def input_name(field: PayloadField) -> str:
    """The form input's name: ``params.grace_days`` for a field of a group."""
    return f"{field.group}.{field.name}" if field.group else field.name


_WHOLE = re.compile(r"^[+-]?[0-9]{1,9}$")


def _value(field: PayloadField, given: list[str]) -> Any:
    """One field's value from what the browser sent (``None``: leave it out). Values that do
    not convert are passed on as typed, for the kind's ``prepare`` to refuse by name."""
    first = given[0] if given else ""
    if field.type not in ("textarea", "pem", "list"):
        first = first.strip()  # one line: spaces around it are no part of the value
    match field.type:
        case "checkbox":
            return bool(given)
        case "checkboxes":
            return given
        case "list":
            names = [n.strip() for n in re.split(r"[,\n]", first) if n.strip()]
            return names if names or field.required else None
        case _ if first == "" and not field.required:
            return None
        case "number":
            return int(first) if _WHOLE.match(first) else first
        case "boolean":
            return {"true": True, "false": False}.get(first, first)
        case "textarea":
            return " ".join(line.strip() for line in first.splitlines() if line.strip())
        case "pem":
            return first.replace("\r\n", "\n")
        case _:
            return first


def payload_from_form(
    kind: str, form: Mapping[str, list[str]], csv_text: str | None
) -> dict[str, Any]:
    """The payload of a kind's form (``form``: each input's submitted values; ``csv_text``:
    the uploaded file's text): one value per field of the kind, converted to the JSON type
    its ``prepare`` reads (which checks it, as for the API)."""
    payload: dict[str, Any] = {}
    for field in KINDS[kind].fields:
        if field.type == "file":
            value: Any = csv_text
        else:
            value = _value(field, form.get(input_name(field), []))
        if value is None:
            continue
        if field.group:
            payload.setdefault(field.group, {})[field.name] = value
        else:
            payload[field.name] = value
    if _has_control(payload):
        raise ProposalError("payload: control characters (such as NUL) are not allowed")
    return payload


def field_of(kind: str, message: str) -> str | None:
    """The form input an error message names (``period: ...`` -> ``period``; a group's
    member, e.g. ``grace_days: ...`` -> ``params.grace_days``), else None."""
    named = message.split(":", 1)[0].strip() if ":" in message[:60] else ""
    for field in KINDS[kind].fields:
        if named in (field.name, input_name(field)):
            return input_name(field)
    return None


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
    """A proposal for the API: its fields, steps, diff and what ``actor`` may do next
    (``you_may``: its next step and ``reject``, or ``resume``); after ``actor``'s step
    took a recovery code, ``recovery_codes_left`` and, when few are, a ``warning``."""
    data = dataclasses.asdict(proposal)
    data["payload"] = {
        k: (v if not isinstance(v, str) or len(v) <= MAX_PAYLOAD else v[:MAX_PAYLOAD] + "…")
        for k, v in proposal.payload.items()
    }
    data["next_role"] = proposal.next_role.value if proposal.next_role else None
    data["next_action"] = proposal.next_action
    data["you_may"] = next_steps(proposal, actor) + (
        ["resume"] if may_resume(proposal, actor, dt.datetime.now(dt.UTC)) else []
    )
    low = otp.low_note(actor.staff_id, proposal.recovery_codes_left)
    if low:
        data["warning"] = low
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


def may_resume(proposal: Proposal, actor: Actor, now: dt.datetime) -> bool:
    """Whether ``actor`` may resume ``proposal`` now (``central.proposals.resume``): it is
    left applying past its lease, and they hold its last level's role, did not enter it and
    are not the one it is about."""
    if proposal.status != "applying" or proposal.created_by == actor.staff_id:
        return False
    if proposal.apply_until is not None and proposal.apply_until > now:
        return False
    approver = staff_approver(proposal.kind, proposal.payload)
    if approver is not None and proposal.target == actor.staff_id:
        return False
    return may(actor, proposal.levels, proposal.levels, approver)
