"""The proposals API: propose, recheck, approve, reject, list what waits, show one.

Every change to money or eligibility is a proposal that passes ``levels`` different
people: entered by an entry clerk, rechecked by reviewers, approved by an approver
(``central.proposals.roles``). Nothing takes effect before the last approval. Each step
checks, in one transaction, that the proposal is open, that this step is the one it
waits for, that the person did not enter it nor act on it before, that they hold the
level's role, and that the data it was made against is unchanged (else the proposal is
closed as ``stale``). Every step is audited.

Kinds that act outside the database (a bank file, an upload, a certificate) are applied
after the approval commits, under a lease (``[proposals] apply_lease_s``): the proposal is
``applying``, held by the approver until the lease ends. A process killed meanwhile leaves
it so; ``resume`` (an approver, once the lease ran out) takes the lease over and finishes
it exactly once: recorded as applied when the change is already made, else made.
"""

import datetime as dt
import json
import logging
import secrets
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from central.proposals.assisted import AssistedReview
from central.proposals.base import (
    Change,
    ClosedError,
    Context,
    Kind,
    NotFoundError,
    Prepared,
    ProposalError,
    RefusedError,
    Resources,
    StaleError,
    text,
)
from central.proposals.payments import BankMake, BankSend
from central.proposals.people import Certification, Hold, RetireeChange, RosterImport
from central.proposals.policy import PolicyVersion
from central.proposals.registry import RegistryImport
from central.proposals.roles import check as check_role
from central.proposals.roles import may, role_for
from central.proposals.settings import ProposalSettings
from central.proposals.staffing import KINDS as _STAFF
from central.proposals.staffing import STAFF_KINDS as _STAFF_NAMES
from central.proposals.tables import proposal_rows, proposal_steps, proposals
from central.staff import audit, otp
from central.staff.accounts import DEFAULT_MAX_FAILED
from central.staff.identity import Actor, Role
from common.errors import LifecertError

_p, _s, _rows = proposals, proposal_steps, proposal_rows
log = logging.getLogger(__name__)

KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        RosterImport(),
        RegistryImport(),
        Hold(),
        RetireeChange(),
        Certification(),
        BankMake(),
        BankSend(),
        AssistedReview(),
        PolicyVersion(),
        *_STAFF,
    )
}
"""Every kind of proposal, by name."""

OPEN, APPLYING, APPLIED, REJECTED, STALE, FAILED = (
    "open",
    "applying",
    "applied",
    "rejected",
    "stale",
    "failed",
)


@dataclass(frozen=True)
class Step:
    """One person's step on a proposal."""

    level: int
    staff_id: str
    role: str
    action: str  # enter / recheck / approve / reject
    at: dt.datetime
    reason: str


@dataclass(frozen=True)
class Diff:
    """What a proposal changes: counts, how often each field changes, the first rows."""

    added: int
    changed: int
    fields: dict[str, int]
    rows: tuple[Change, ...]


@dataclass(frozen=True)
class Proposal:
    """A proposal as staff see it."""

    id: int
    kind: str
    status: str
    levels: int
    done: int
    target: str
    summary: str
    payload: dict[str, Any]
    created_at: dt.datetime
    created_by: str
    reason: str | None
    result: dict[str, Any] | None
    steps: tuple[Step, ...]
    diff: Diff | None = None
    apply_by: str | None = None  # while applying: who holds the lease, until when
    apply_until: dt.datetime | None = None
    recovery_codes_left: int | None = None  # this step took a recovery code: how many left

    @property
    def next_role(self) -> Role | None:
        """The role the proposal waits for (None once decided)."""
        if self.status != OPEN:
            return None
        return role_for(self.done + 1, self.levels, staff_approver(self.kind, self.payload))

    @property
    def next_action(self) -> str | None:
        """``recheck`` or ``approve`` (None once decided)."""
        if self.status != OPEN:
            return None
        return "approve" if self.done + 1 == self.levels else "recheck"


def _jsonable(value: Any) -> Any:
    """``value`` with dates and other non-JSON values as text."""
    return json.loads(json.dumps(value, default=str))


def staff_approver(kind: str, payload: dict[str, Any]) -> Role | None:
    """The role that decides a staff change (fixed when it was entered); None for other
    kinds, whatever their payload holds."""
    if kind not in _STAFF_NAMES:
        return None
    return Role(payload.get("staff_approver", Role.ADMINISTRATOR.value))


def _not_about_self(actor: Actor, handler: Kind, target: str, proposal: str) -> None:
    if handler.about_staff and actor.staff_id == target:
        raise RefusedError(
            f"{actor.staff_id} may not act on {proposal}: it changes their own account; "
            "other administrators decide it"
        )


def _kind(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise ProposalError(
            f"kind: {name!r} is not a kind: use one of {', '.join(KINDS)}"
        ) from None


def _load(conn: Connection, proposal_id: int, lock: bool = False) -> Any:
    select = sa.select(_p).where(_p.c.id == proposal_id)
    row = conn.execute(select.with_for_update() if lock else select).first()
    if row is None:
        raise NotFoundError(f"no proposal {proposal_id}: see `lifecert-central proposals list`")
    return row


def _steps(conn: Connection, proposal_id: int) -> tuple[Step, ...]:
    rows = conn.execute(
        sa.select(_s).where(_s.c.proposal_id == proposal_id).order_by(_s.c.level)
    ).all()
    return tuple(Step(r.level, r.staff_id, r.role, r.action, r.at, r.reason) for r in rows)


def _diff(conn: Connection, proposal_id: int, limit: int) -> Diff | None:
    counts: dict[str, int] = dict(
        conn.execute(
            sa.select(_rows.c.change, sa.func.count())
            .where(_rows.c.proposal_id == proposal_id)
            .group_by(_rows.c.change)
        ).all()
    )
    if not counts:
        return None
    fields: dict[str, int] = {}
    first: list[Change] = []
    for row in conn.execute(
        sa.select(_rows).where(_rows.c.proposal_id == proposal_id).order_by(_rows.c.line),
        execution_options={"yield_per": 2_000},
    ):
        for name in row.after:
            fields[name] = fields.get(name, 0) + 1
        if len(first) < limit:
            first.append(Change(row.line, row.retiree_id, row.change, row.before, row.after))
    return Diff(int(counts.get("added", 0)), int(counts.get("changed", 0)), fields, tuple(first))


def _proposal(conn: Connection, row: Any, diff_rows: int | None = None) -> Proposal:
    return Proposal(
        id=row.id,
        kind=row.kind,
        status=row.status,
        levels=row.levels,
        done=row.done,
        target=row.target,
        summary=row.summary,
        payload=row.payload,
        created_at=row.created_at,
        created_by=row.created_by,
        reason=row.reason,
        result=row.result,
        steps=_steps(conn, row.id),
        diff=None if diff_rows is None else _diff(conn, row.id, diff_rows),
        apply_by=row.apply_by,
        apply_until=row.apply_until,
    )


def _snapshot(row: Any) -> dict[str, Any]:
    return {"status": row.status, "done": row.done, "levels": row.levels, "kind": row.kind}


def propose(
    engine: Engine,
    actor: Actor,
    kind: str,
    payload: dict[str, Any],
    *,
    settings: ProposalSettings | None = None,
    resources: Resources | None = None,
    now: dt.datetime | None = None,
) -> Proposal:
    """Enter a proposal of ``kind`` (level 1: needs the entry clerk role).

    ``payload`` is checked and normalised by the kind (``ProposalError`` naming the field);
    the number of people it needs comes from ``settings`` (``[proposals]``), else from
    ``resources.cfg.proposals``, else the defaults."""
    now = now or dt.datetime.now(dt.UTC)
    handler = _kind(kind)
    if not isinstance(payload, dict):
        raise ProposalError("payload: a JSON object")
    settings = settings or (resources.cfg.proposals if resources else ProposalSettings())
    levels = int(getattr(settings, handler.levels_setting or kind))
    approver = Role(settings.staff_approver) if handler.about_staff else None
    role = check_role(actor, kind, 1, levels, approver)
    ctx = Context(now, resources)
    with engine.begin() as conn:
        waiting = conn.scalar(sa.select(sa.func.count()).where(_p.c.status == OPEN)) or 0
        if waiting >= settings.max_open:
            raise RefusedError(
                f"{waiting} proposals wait already ([proposals] max_open): decide some first"
            )
        prepared = handler.prepare(conn, payload, ctx)
        _not_about_self(actor, handler, prepared.target, f"a {kind} proposal")
        if approver is not None:
            prepared.payload["staff_approver"] = approver.value
        row = enter(conn, actor, kind, prepared, levels, role.value, "enter", now)
        return _proposal(conn, row, diff_rows=0)


def enter(
    conn: Connection,
    actor: Actor,
    kind: str,
    prepared: Prepared,
    levels: int,
    role: str,
    action: str,
    now: dt.datetime,
) -> Any:
    """Store a prepared proposal with its diff, fingerprint and first step, audited, in
    ``conn``'s transaction; its row. (``propose`` checks who may; ingest refers results.)"""
    handler = _kind(kind)
    proposal_id = conn.execute(
        _p.insert()
        .values(
            kind=kind,
            status=OPEN,
            levels=levels,
            done=1,
            target=prepared.target,
            summary=prepared.summary,
            payload=prepared.payload,
            fingerprint="",
            created_at=now,
            created_by=actor.staff_id,
        )
        .returning(_p.c.id)
    ).scalar_one()
    rows = [
        {
            "proposal_id": proposal_id,
            "line": c.line,
            "retiree_id": c.retiree_id,
            "change": c.change,
            "before": c.before,
            "after": c.after,
        }
        for c in prepared.rows
    ]
    for start in range(0, len(rows), 2_000):
        conn.execute(_rows.insert(), rows[start : start + 2_000])
    row = _load(conn, proposal_id)
    conn.execute(
        _p.update().where(_p.c.id == proposal_id).values(fingerprint=handler.fingerprint(conn, row))
    )
    conn.execute(
        _s.insert().values(
            proposal_id=proposal_id,
            level=1,
            staff_id=actor.staff_id,
            role=role,
            action=action,
            at=now,
            reason="",
        )
    )
    row = _load(conn, proposal_id)
    audit.record(
        conn,
        actor,
        f"proposal.{action}",
        f"proposal:{proposal_id}",
        None,
        _snapshot(row) | {"summary": prepared.summary},
        at=now,
    )
    return row


def _check_person(conn: Connection, actor: Actor, row: Any, level: int) -> Role:
    """The role ``actor`` takes ``level`` of ``row`` with, or ``RefusedError`` saying why not."""
    if actor.staff_id == row.created_by:
        raise RefusedError(
            f"{actor.staff_id} entered proposal {row.id}: someone else must recheck and approve it"
        )
    for step in _steps(conn, row.id):
        if step.staff_id == actor.staff_id:
            raise RefusedError(
                f"{actor.staff_id} already took a step on proposal {row.id} ({step.action}, level "
                f"{step.level}): each level needs a different person"
            )
    _not_about_self(actor, _kind(row.kind), row.target, f"proposal {row.id}")
    return check_role(actor, row.kind, level, row.levels, staff_approver(row.kind, row.payload))


def _decide(
    engine: Engine,
    actor: Actor,
    proposal_id: int,
    action: str,
    reason: str,
    code: str | None,
    resources: Resources | None,
    now: dt.datetime | None,
) -> Proposal:
    """Recheck or approve (``action``) proposal ``proposal_id`` (``code``: the person's
    current TOTP code, for the kinds that need one)."""
    now = now or dt.datetime.now(dt.UTC)
    reason = text({"reason": reason}, "reason", 500)
    ctx = Context(now, resources)
    try:
        return _decide_checked(engine, actor, proposal_id, action, reason, code, ctx)
    except otp.SecondFactorError as refused:
        if refused.counts:
            limit = resources.cfg.staff.max_failed_logins if resources else DEFAULT_MAX_FAILED
            otp.count_wrong(engine, actor, limit=limit, reason=str(refused))
        raise RefusedError(str(refused)) from None


def _second_factor(
    conn: Connection, actor: Actor, row: Any, code: str | None, ctx: Context
) -> int | None:
    """Check ``actor``'s code when ``row``'s kind needs one ([proposals]
    second_factor_kinds), in ``conn``'s transaction; else nothing (a code given is unused).
    How many recovery codes are left when the code was one."""
    settings = ctx.resources.cfg.proposals if ctx.resources else ProposalSettings()
    if row.kind not in settings.second_factor_kinds:
        return None
    if ctx.resources is None:
        raise RefusedError(
            f"proposal {row.id} ({row.kind}) needs a second factor: central's config is needed "
            "to check it"
        )
    cipher = otp.OtpCipher.from_file(ctx.resources.cfg.staff.otp_key_file)
    what = f"proposal {row.id} ({row.kind})"
    return otp.verify(conn, cipher, actor, code, what, ctx.now)


def _decide_checked(
    engine: Engine,
    actor: Actor,
    proposal_id: int,
    action: str,
    reason: str,
    code: str | None,
    ctx: Context,
) -> Proposal:
    now = ctx.now
    stale: StaleError | None = None
    with engine.begin() as conn:
        row = _load(conn, proposal_id, lock=True)
        if row.status != OPEN:
            raise ClosedError(f"proposal {proposal_id} is {row.status}: nothing to {action}")
        level = row.done + 1
        expected = "approve" if level == row.levels else "recheck"
        if action != expected:
            raise RefusedError(
                f"proposal {proposal_id} waits for {expected} (level {level} of {row.levels}), "
                f"not {action}"
            )
        role = _check_person(conn, actor, row, level)
        recovery_left = _second_factor(conn, actor, row, code, ctx)
        handler = _kind(row.kind)
        if handler.fingerprint(conn, row) != row.fingerprint:
            stale = StaleError(
                f"proposal {proposal_id} is stale: the data it was made against changed since "
                f"it was entered ({row.summary}); it is closed: propose it again"
            )
            conn.execute(
                _p.update()
                .where(_p.c.id == proposal_id)
                .values(
                    status=STALE, decided_at=now, reason="the data changed since it was entered"
                )
            )
            audit.record(
                conn,
                actor,
                "proposal.stale",
                f"proposal:{proposal_id}",
                _snapshot(row),
                {"status": STALE, "refused": action},
                at=now,
            )
        else:
            conn.execute(
                _s.insert().values(
                    proposal_id=proposal_id,
                    level=level,
                    staff_id=actor.staff_id,
                    role=role.value,
                    action=action,
                    at=now,
                    reason=reason,
                )
            )
            values: dict[str, Any] = {"done": level}
            if level == row.levels:
                if handler.external:
                    values |= {"status": APPLYING} | _lease(actor, ctx.resources, now)
                else:
                    result = handler.apply(conn, row, actor.staff_id, ctx)
                    values |= {
                        "status": APPLIED,
                        "decided_at": now,
                        "result": _jsonable(result),
                    }
            conn.execute(_p.update().where(_p.c.id == proposal_id).values(**values))
            audit.record(
                conn,
                actor,
                f"proposal.{action}",
                f"proposal:{proposal_id}",
                _snapshot(row),
                _jsonable({**_snapshot(row), **values} | {"apply_token": None}),
                at=now,
            )
    if stale is not None:
        raise stale
    if level == row.levels and handler.external:
        _apply_outside(engine, actor, proposal_id, handler, ctx, values["apply_token"])
    with engine.connect() as conn:
        decided = _proposal(conn, _load(conn, proposal_id), diff_rows=0)
    return replace(decided, recovery_codes_left=recovery_left)


def _lease(actor: Actor, resources: Resources | None, now: dt.datetime) -> dict[str, Any]:
    """A new lease on applying a proposal, held by ``actor`` (the lease columns' values)."""
    settings = resources.cfg.proposals if resources else ProposalSettings()
    return {
        "apply_token": secrets.token_hex(16),
        "apply_by": actor.staff_id,
        "apply_until": now + dt.timedelta(seconds=settings.apply_lease_s),
    }


def _apply_outside(
    engine: Engine,
    actor: Actor,
    proposal_id: int,
    handler: Kind,
    ctx: Context,
    token: str,
    resumed: bool = False,
) -> None:
    """Apply an external kind under the lease ``token``; mark it applied, or failed with the
    error. ``resumed``: first ask the kind whether the change is already made, and make it
    only if the data is still what was approved."""
    with engine.connect() as conn:
        row = _load(conn, proposal_id)
    try:
        result = handler.finished(engine, row, ctx) if resumed else None
        if result is not None:
            result |= {"resumed": "already done: recorded, not done again"}
        else:
            if resumed:
                with engine.connect() as conn:
                    if handler.fingerprint(conn, row) != row.fingerprint:
                        raise StaleError(
                            f"proposal {proposal_id}: the data it was approved on changed "
                            "since, and its change is not made: check it and propose it again"
                        )
            result = handler.apply_outside(engine, row, actor.staff_id, ctx)
    except Exception as exc:
        problem = f"{type(exc).__name__}: {exc}"[:500]
        _finish(engine, actor, proposal_id, token, ctx.now, {"status": FAILED, "reason": problem})
        raise
    _finish(
        engine, actor, proposal_id, token, ctx.now, {"status": APPLIED, "result": _jsonable(result)}
    )


def _finish(
    engine: Engine,
    actor: Actor,
    proposal_id: int,
    token: str,
    now: dt.datetime,
    values: dict[str, Any],
) -> None:
    """Record how applying ended, if the lease ``token`` is still ours (else whoever took
    it over records it), audited."""
    with engine.begin() as conn:
        done = conn.execute(
            _p.update()
            .where(_p.c.id == proposal_id, _p.c.status == APPLYING, _p.c.apply_token == token)
            .values(decided_at=now, apply_token=None, apply_by=None, apply_until=None, **values)
        ).rowcount
        if done != 1:
            log.warning(
                "proposal %s: the lease ran out and was taken over before it was %s here",
                proposal_id,
                values["status"],
            )
            return
        after = {"status": values["status"]}
        if "result" in values:
            after["result"] = values["result"]
        else:
            after["error"] = values["reason"]
        audit.record(
            conn,
            actor,
            f"proposal.{values['status']}",
            f"proposal:{proposal_id}",
            {"status": APPLYING},
            after,
            at=now,
        )


def resume(
    engine: Engine,
    actor: Actor,
    proposal_id: int,
    *,
    resources: Resources | None = None,
    now: dt.datetime | None = None,
) -> Proposal:
    """Finish a proposal left ``applying`` (its applier died), once its lease ran out.

    Needs the role of its last level (an approver; for a staff change the configured
    ``staff_approver``), never the person who entered it or the one it is about. Takes
    the lease over (two resumers: the second is refused), audits that, then records it
    applied if its change is already made, else makes it (failed, with why, otherwise)."""
    now = now or dt.datetime.now(dt.UTC)
    ctx = Context(now, resources)
    if resources is None:  # checked before the lease is taken: every external kind needs it
        raise ProposalError("resuming a proposal needs central's config and keys (resources)")
    with engine.begin() as conn:
        row = _load(conn, proposal_id, lock=True)
        if row.status != APPLYING:
            raise ClosedError(
                f"proposal {proposal_id} is {row.status}: nothing to resume (only an "
                "applying proposal is)"
            )
        handler = _kind(row.kind)
        if actor.staff_id == row.created_by:
            raise RefusedError(
                f"{actor.staff_id} entered proposal {proposal_id}: another approver resumes it"
            )
        _not_about_self(actor, handler, row.target, f"proposal {proposal_id}")
        check_role(actor, row.kind, row.levels, row.levels, staff_approver(row.kind, row.payload))
        if row.apply_until is not None and row.apply_until > now:
            raise RefusedError(
                f"proposal {proposal_id} is being applied by {row.apply_by} until "
                f"{row.apply_until:%Y-%m-%d %H:%M:%S} UTC ([proposals] apply_lease_s): resume "
                "it after that if it is still applying"
            )
        lease = _lease(actor, resources, now)
        held = (
            _p.c.apply_token.is_(None)
            if row.apply_token is None
            else _p.c.apply_token == row.apply_token
        )
        taken = conn.execute(
            _p.update().where(_p.c.id == proposal_id, _p.c.status == APPLYING, held).values(**lease)
        ).rowcount
        if taken != 1:
            raise RefusedError(f"proposal {proposal_id} was just taken over by someone else")
        audit.record(
            conn,
            actor,
            "proposal.resume",
            f"proposal:{proposal_id}",
            _jsonable({"status": APPLYING, "by": row.apply_by, "until": row.apply_until}),
            _jsonable({"status": APPLYING, "by": actor.staff_id, "until": lease["apply_until"]}),
            at=now,
        )
    _apply_outside(engine, actor, proposal_id, handler, ctx, lease["apply_token"], resumed=True)
    with engine.connect() as conn:
        return _proposal(conn, _load(conn, proposal_id), diff_rows=0)


def resume_due(
    engine: Engine,
    actor: Actor,
    *,
    resources: Resources | None = None,
    now: dt.datetime | None = None,
) -> list[tuple[int, Proposal | LifecertError | OSError]]:
    """``resume`` every applying proposal whose lease ran out (oldest first): each one's
    proposal, or the error that refused or failed it."""
    now = now or dt.datetime.now(dt.UTC)
    with engine.connect() as conn:
        due = conn.scalars(
            sa.select(_p.c.id)
            .where(
                _p.c.status == APPLYING,
                sa.or_(_p.c.apply_until.is_(None), _p.c.apply_until <= now),
            )
            .order_by(_p.c.id)
        ).all()
    done: list[tuple[int, Proposal | LifecertError | OSError]] = []
    for proposal_id in due:
        try:
            done.append(
                (proposal_id, resume(engine, actor, proposal_id, resources=resources, now=now))
            )
        except (LifecertError, OSError) as exc:
            done.append((proposal_id, exc))
    return done


def recheck(
    engine: Engine,
    actor: Actor,
    proposal_id: int,
    reason: str = "",
    *,
    code: str | None = None,
    resources: Resources | None = None,
    now: dt.datetime | None = None,
) -> Proposal:
    """Recheck a proposal (a middle level: needs the reviewer role); ``code``: the
    reviewer's current TOTP code or a recovery code, for the kinds in ``[proposals]
    second_factor_kinds``."""
    return _decide(engine, actor, proposal_id, "recheck", reason, code, resources, now)


def approve(
    engine: Engine,
    actor: Actor,
    proposal_id: int,
    reason: str = "",
    *,
    code: str | None = None,
    resources: Resources | None = None,
    now: dt.datetime | None = None,
) -> Proposal:
    """Approve a proposal (its last level: needs the approver role) and apply it.

    The payment kinds need ``resources`` (central's config and keys) to apply, and
    ``code``, the approver's current TOTP code or a recovery code (``[proposals]
    second_factor_kinds``; ``recovery_codes_left`` of the answer: a recovery code was
    used)."""
    return _decide(engine, actor, proposal_id, "approve", reason, code, resources, now)


def reject(
    engine: Engine,
    actor: Actor,
    proposal_id: int,
    reason: str,
    *,
    now: dt.datetime | None = None,
) -> Proposal:
    """Reject a proposal, saying why (by whoever may take its next step); nothing changes."""
    now = now or dt.datetime.now(dt.UTC)
    reason = text({"reason": reason}, "reason", 500, 1)
    with engine.begin() as conn:
        row = _load(conn, proposal_id, lock=True)
        if row.status != OPEN:
            raise ClosedError(f"proposal {proposal_id} is {row.status}: nothing to reject")
        level = row.done + 1
        role = _check_person(conn, actor, row, level)
        conn.execute(
            _s.insert().values(
                proposal_id=proposal_id,
                level=level,
                staff_id=actor.staff_id,
                role=role.value,
                action="reject",
                at=now,
                reason=reason,
            )
        )
        values = {"status": REJECTED, "decided_at": now, "reason": reason}
        conn.execute(_p.update().where(_p.c.id == proposal_id).values(**values))
        audit.record(
            conn,
            actor,
            "proposal.reject",
            f"proposal:{proposal_id}",
            _snapshot(row),
            {**_snapshot(row), **values},
            at=now,
        )
        return _proposal(conn, _load(conn, proposal_id), diff_rows=0)


def list_for(engine: Engine, actor: Actor, limit: int = 100) -> list[Proposal]:
    """The open proposals waiting for a step ``actor`` may take: their next level's role
    is one of theirs, and they neither entered nor acted on them; oldest first."""
    found: list[Proposal] = []
    with engine.connect() as conn:
        acted = sa.select(_s.c.proposal_id).where(_s.c.staff_id == actor.staff_id)
        rows = conn.execute(
            sa.select(_p)
            .where(_p.c.status == OPEN, _p.c.created_by != actor.staff_id, _p.c.id.not_in(acted))
            .order_by(_p.c.id),
            execution_options={"yield_per": 500},
        )
        for row in rows:
            if row.kind in _STAFF_NAMES and row.target == actor.staff_id:
                continue
            if may(actor, row.done + 1, row.levels, staff_approver(row.kind, row.payload)):
                found.append(_proposal(conn, row))
                if len(found) == limit:
                    break
    return found


def list_all(
    engine: Engine,
    status: str | None = None,
    limit: int = 100,
    kinds: Collection[str] | None = None,
) -> list[Proposal]:
    """Proposals, newest first (only ``status`` and ``kinds`` when given)."""
    with engine.connect() as conn:
        select = sa.select(_p).order_by(_p.c.id.desc()).limit(limit)
        if kinds is not None:
            select = select.where(_p.c.kind.in_(sorted(kinds)))
        if status is not None:
            select = select.where(_p.c.status == status)
        return [_proposal(conn, row) for row in conn.execute(select).all()]


def show(engine: Engine, proposal_id: int, diff_rows: int = 50) -> Proposal:
    """One proposal with its steps and diff (counts, per-field counts, the first
    ``diff_rows`` rows)."""
    with engine.connect() as conn:
        return _proposal(conn, _load(conn, proposal_id), diff_rows=diff_rows)
