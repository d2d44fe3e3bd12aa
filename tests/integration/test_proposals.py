"""Proposals: every kind through all its levels, and every refusal (the person who entered
it, the same person twice, the wrong role, the wrong step, stale data), on SQLite and
PostgreSQL; a roster never moves ``certified_until``; the second factor, with TOTP and
recovery codes (one used twice at once approves once)."""

import datetime as dt
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from central import config, proposals
from central.config import CentralConfig
from central.payments import bankfile, holds, runs
from central.payments.period import Period
from central.people import roster
from central.proposals.settings import ProposalSettings
from central.proposals.staffing import STAFF_KINDS
from central.staff import accounts, audit, otp, recovery
from central.staff.identity import Actor, Role
from central.staff.tables import audit_log
from central.staff.tables import staff as staff_table
from central.store import schema
from common import idnumber
from common.errors import ConfigError
from tests.fixtures.bank import Bank
from tests.fixtures.otp import Phones

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 5, 3, 9, tzinfo=dt.UTC)
APRIL = "2026-04"
CLERK = Actor("clerk-1", frozenset({Role.ENTRY_CLERK}))
REVIEWER = Actor("reviewer-1", frozenset({Role.REVIEWER}))
APPROVER = Actor("approver-1", frozenset({Role.APPROVER}))
BOTH = Actor("senior-1", frozenset({Role.REVIEWER, Role.APPROVER}))
EVERYTHING = Actor("boss-1", frozenset({Role.ENTRY_CLERK, Role.REVIEWER, Role.APPROVER}))
ADMIN = Actor("admin-1", frozenset({Role.ADMINISTRATOR, Role.AUDITOR}))
HEADER = "id_number,name,sex,birth_date,monthly_amount,bank_account,account_name,certified_until\n"


@dataclass
class Resources:
    """What ``central.bootstrap.Central`` hands the payment kinds: config and signing key."""

    cfg: CentralConfig
    sign_key: ec.EllipticCurvePrivateKey


@dataclass
class World:
    engine: Any
    ids: list[str]
    res: Resources
    tmp: Path
    phones: Phones
    bank: Bank | None = None

    def acting(self, actor: Actor, now: dt.datetime = NOW) -> dict[str, Any]:
        """Keywords for ``actor``'s step at ``now``: central's resources and their current
        code (bank kinds need it; other kinds ignore it)."""
        return {"resources": self.res, "now": now, "code": self.phones.code(actor.staff_id, now)}


SETUP = Actor("setup", frozenset({Role.ADMINISTRATOR}))


def _staff(engine: Any, key_file: Path) -> Phones:
    """Accounts for the people who decide, each with an enrolled second factor."""
    phones = Phones()
    for actor in (CLERK, REVIEWER, APPROVER, BOTH, EVERYTHING):
        with engine.begin() as conn:
            accounts.insert(conn, SETUP, actor.staff_id, actor.staff_id, actor.roles)
        phones.enrol(engine, key_file, actor, NOW - dt.timedelta(hours=1))
    return phones


def _people(engine: Any) -> list[str]:
    rows = []
    for serial in (11, 13, 15, 17):
        number = idnumber.make("110105", dt.date(1950, 3, 7), serial)
        rows.append(
            {
                "id_number": number,
                "name": f"Retiree {serial}",
                "sex": idnumber.sex(number),
                "birth_date": dt.date(1950, 3, 7),
                "monthly_amount_cents": 100_000 + serial,
                "bank_account": f"62220000000000{serial}",
                "account_name": f"Retiree {serial}",
                "status": "active",
                "certified_until": dt.date(2026, 12, 31),
            }
        )
    roster.upsert(engine, rows, "test", NOW - dt.timedelta(days=60))  # enrolled in March
    return [r["id_number"] for r in rows]


def _resources(tmp: Path, bank: Bank | None) -> Resources:
    key = (bank.encrypt_key if bank else ec.generate_private_key(ec.SECP256R1())).public_key()
    pub = tmp / "bank-encrypt.pub.pem"
    pub.write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    data: dict[str, Any] = {"bank": {"out_dir": str(tmp / "out"), "encrypt_pub": str(pub)}}
    if bank is not None:
        data["bank"]["sftp"] = bank.settings.model_dump(mode="json")
    cfg = CentralConfig.model_validate(data, context={"base_dir": tmp})
    return Resources(cfg, ec.generate_private_key(ec.SECP256R1()))


def _row(engine: Any, retiree: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(schema.retirees).where(schema.retirees.c.id_number == retiree)
        ).one()


def _set(engine: Any, retiree: str, **values: Any) -> None:
    """Change a retiree behind the proposal's back (another writer)."""
    with engine.begin() as conn:
        conn.execute(
            schema.retirees.update().where(schema.retirees.c.id_number == retiree).values(**values)
        )


def _status(engine: Any, period: str) -> str | None:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(schema.payment_runs.c.status).where(schema.payment_runs.c.period == period)
        ).first()
    return None if row is None else str(row.status)


def _run(w: World) -> None:
    runs.run(w.engine, Period.parse(APRIL), w.res.cfg.policy, now=NOW)


def _make(w: World) -> None:
    _run(w)
    bank = w.res.cfg.bank
    bankfile.make(
        w.engine,
        Period.parse(APRIL),
        bank.payer,
        bank.out_dir,
        w.res.sign_key,
        bankfile.load_public_key(bank.encrypt_pub, "bank.encrypt_pub"),
        NOW,
    )


NEWCOMER = idnumber.make("310104", dt.date(1948, 11, 30), 31)


def _roster_payload(w: World) -> dict[str, Any]:
    return {
        "csv": HEADER
        + f"{w.ids[0]},Retiree 11,{idnumber.sex(w.ids[0])},1950-03-07,1500.00,,,\n"
        + f"{NEWCOMER},Li Lei,M,1948-11-30,2000.00,6222000000000099,Li Lei,2026-10-31\n"
    }


def _roster_applied(w: World) -> bool:
    with w.engine.connect() as conn:
        added = conn.scalar(
            sa.select(sa.func.count()).where(schema.retirees.c.id_number == NEWCOMER)
        )
    return bool(_row(w.engine, w.ids[0]).monthly_amount_cents == 150_000 and added)


def _events(engine: Any, prefix: str) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(schema.events)
            .where(schema.events.c.kind.startswith(prefix))
            .order_by(schema.events.c.id)
        ).all()


def _audit(engine: Any) -> list[Any]:
    """The proposals' entries in the staff audit chain (and the chain still verifies)."""
    audit.verify(engine)
    with engine.connect() as conn:
        return conn.execute(
            sa.select(audit_log)
            .where(audit_log.c.action.startswith("proposal."))
            .order_by(audit_log.c.id)
        ).all()


def _held_by_proposal(w: World) -> bool:
    """A manual hold on the first retiree, open, placed on the approval."""
    placed = [e for e in _events(w.engine, "hold_placed") if e.actor == "approver-1"]
    with w.engine.connect() as conn:
        return bool(placed) and placed[0].detail["hold_id"] in holds.open_holds(conn, w.ids[0])


@dataclass(frozen=True)
class Case:
    """One kind: its payload, a change that makes it stale, and whether it took effect."""

    payload: Callable[[World], dict[str, Any]]
    stale: Callable[[World], None]
    applied: Callable[[World], bool]
    setup: Callable[[World], None] = lambda w: None
    needs_bank: bool = False


CASES: dict[str, Case] = {
    "roster_import": Case(
        _roster_payload,
        lambda w: _set(w.engine, w.ids[0], monthly_amount_cents=120_000),
        _roster_applied,
    ),
    "registry_import": Case(
        lambda w: {
            "kind": "death",
            "csv": f"id_number,birth_date,death_date\n{w.ids[3]},1950-03-07,2026-04-20\n",
        },
        lambda w: _set(w.engine, w.ids[3], status="suspended"),
        lambda w: _row(w.engine, w.ids[3]).status == "deceased",
    ),
    "hold": Case(
        lambda w: {"retiree_id": w.ids[0], "action": "place", "note": "bank letter returned"},
        lambda w: holds.place(w.engine, w.ids[0], "someone", "", NOW) and None,
        _held_by_proposal,
    ),
    "retiree_change": Case(
        lambda w: {
            "retiree_id": w.ids[1],
            "bank_account": "6222 0000 0000 0077",
            "note": "form 12 of 2026-05-02",
        },
        lambda w: _set(w.engine, w.ids[1], account_name="Someone Else"),
        lambda w: _row(w.engine, w.ids[1]).bank_account == "6222000000000077",
    ),
    "certification": Case(
        lambda w: {
            "retiree_id": w.ids[2],
            "certified_until": "2027-03-31",
            "reason": "home visit, bedridden",
            "evidence": "visit report 2026-117",
        },
        lambda w: _set(w.engine, w.ids[2], certified_until=dt.date(2027, 1, 31)),
        lambda w: _row(w.engine, w.ids[2]).certified_until == dt.date(2027, 3, 31),
    ),
    "bank_make": Case(
        lambda w: {"period": APRIL},
        _run,  # recomputed after it was proposed
        lambda w: _status(w.engine, APRIL) == "filed",
        setup=_run,
    ),
    "bank_send": Case(
        lambda w: {"period": APRIL},
        lambda w: (w.res.cfg.bank.out_dir / f"LIFECERT-{APRIL}.jwe").write_text("swapped"),
        lambda w: (
            _status(w.engine, APRIL) == "sent"
            and w.bank is not None
            and (w.bank.incoming / f"LIFECERT-{APRIL}.jwe").exists()
        ),
        setup=_make,
        needs_bank=True,
    ),
}


@pytest.fixture
def world(migrated_engine: Any, tmp_path: Path) -> World:
    res = _resources(tmp_path, None)
    otp.write_key(res.cfg.staff.otp_key_file)
    phones = _staff(migrated_engine, res.cfg.staff.otp_key_file)
    return World(migrated_engine, _people(migrated_engine), res, tmp_path, phones)


def _world_for(case: Case, w: World, request: pytest.FixtureRequest) -> World:
    if case.needs_bank:
        w.bank = request.getfixturevalue("bank")
        w.res = _resources(w.tmp, w.bank)
    case.setup(w)
    return w


def test_the_kinds_are_the_cases() -> None:
    own_files = {"assisted_review", "policy"} | STAFF_KINDS
    assert set(CASES) == set(proposals.KINDS) - own_files


@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_kind_passes_all_its_levels_and_only_then_takes_effect(
    kind: str, world: World, request: pytest.FixtureRequest
) -> None:
    case = CASES[kind]
    w = _world_for(case, world, request)
    kw = {"resources": w.res, "now": NOW}
    entered = proposals.propose(w.engine, CLERK, kind, case.payload(w), **kw)
    levels = int(getattr(ProposalSettings(), kind))
    assert (entered.status, entered.done, entered.levels) == ("open", 1, levels)
    assert entered.next_role == (Role.REVIEWER if levels > 2 else Role.APPROVER)
    assert not case.applied(w)
    if levels == 3:
        assert [p.id for p in proposals.list_for(w.engine, REVIEWER)] == [entered.id]
        assert proposals.list_for(w.engine, APPROVER) == []
        rechecked = proposals.recheck(
            w.engine, REVIEWER, entered.id, "matches the form", **w.acting(REVIEWER)
        )
        assert (rechecked.status, rechecked.done) == ("open", 2)
        assert not case.applied(w)
    assert [p.id for p in proposals.list_for(w.engine, APPROVER)] == [entered.id]
    done = proposals.approve(w.engine, APPROVER, entered.id, **w.acting(APPROVER))
    assert done.status == "applied", done.reason
    assert case.applied(w)
    assert done.result is not None
    steps = [(s.staff_id, s.role, s.action) for s in done.steps]
    assert steps[0] == ("clerk-1", "entry_clerk", "enter")
    assert steps[-1] == ("approver-1", "approver", "approve")
    assert len(steps) == levels
    audited = _audit(w.engine)
    assert audited[0].action == "proposal.enter" and "proposal.approve" in [
        e.action for e in audited
    ]
    assert {e.staff_id for e in audited} <= {"clerk-1", "reviewer-1", "approver-1"}
    assert proposals.list_for(w.engine, APPROVER) == []
    with pytest.raises(proposals.ClosedError, match="applied"):
        proposals.approve(w.engine, BOTH, entered.id, **kw)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_kind_refuses_the_wrong_people_and_stale_data(
    kind: str, world: World, request: pytest.FixtureRequest
) -> None:
    case = CASES[kind]
    w = _world_for(case, world, request)
    kw = {"resources": w.res, "now": NOW}
    three = ProposalSettings(**{kind: 3})
    with pytest.raises(proposals.RefusedError, match="entry_clerk role"):
        proposals.propose(w.engine, REVIEWER, kind, case.payload(w), settings=three, **kw)
    entered = proposals.propose(w.engine, EVERYTHING, kind, case.payload(w), settings=three, **kw)
    assert entered.levels == 3
    # the person who entered it, though holding every role
    with pytest.raises(proposals.RefusedError, match="entered proposal"):
        proposals.recheck(w.engine, EVERYTHING, entered.id, **kw)
    assert proposals.list_for(w.engine, EVERYTHING) == []
    # the wrong step: it waits for a recheck
    with pytest.raises(proposals.RefusedError, match="waits for recheck"):
        proposals.approve(w.engine, APPROVER, entered.id, **kw)
    # the wrong role
    for actor in (CLERK, APPROVER, ADMIN):
        with pytest.raises(proposals.RefusedError, match="reviewer role"):
            proposals.recheck(w.engine, actor, entered.id, **kw)
    proposals.recheck(w.engine, BOTH, entered.id, **w.acting(BOTH))
    # the same person twice
    with pytest.raises(proposals.RefusedError, match="already took a step"):
        proposals.approve(w.engine, BOTH, entered.id, **kw)
    with pytest.raises(proposals.RefusedError, match="approver role"):
        proposals.approve(w.engine, REVIEWER, entered.id, **kw)
    assert not case.applied(w)
    # stale: the data changed since it was entered
    case.stale(w)
    with pytest.raises(proposals.StaleError, match="stale"):
        proposals.approve(w.engine, APPROVER, entered.id, **w.acting(APPROVER))
    shown = proposals.show(w.engine, entered.id)
    assert shown.status == "stale" and [s.action for s in shown.steps] == ["enter", "recheck"]
    assert not case.applied(w)
    with pytest.raises(proposals.ClosedError, match="stale"):
        proposals.approve(w.engine, APPROVER, entered.id, **kw)
    assert _audit(w.engine)[-1].action == "proposal.stale"


def test_a_rejection_says_why_and_changes_nothing(world: World) -> None:
    w = world
    payload = CASES["retiree_change"].payload(w)
    entered = proposals.propose(w.engine, CLERK, "retiree_change", payload, now=NOW)
    with pytest.raises(proposals.ProposalError, match="reason"):
        proposals.reject(w.engine, REVIEWER, entered.id, "", now=NOW)
    with pytest.raises(proposals.RefusedError, match="entered proposal"):
        proposals.reject(w.engine, CLERK, entered.id, "changed my mind", now=NOW)
    with pytest.raises(proposals.RefusedError, match="reviewer role"):
        proposals.reject(w.engine, APPROVER, entered.id, "not mine to say", now=NOW)
    done = proposals.reject(w.engine, REVIEWER, entered.id, "the form is not signed", now=NOW)
    assert (done.status, done.reason) == ("rejected", "the form is not signed")
    assert done.steps[-1].action == "reject" and done.steps[-1].staff_id == "reviewer-1"
    assert _row(w.engine, w.ids[1]).bank_account == "6222000000000013"
    with pytest.raises(proposals.ClosedError, match="rejected"):
        proposals.approve(w.engine, APPROVER, entered.id, now=NOW)
    assert json.loads(_audit(w.engine)[-1].after)["reason"] == "the form is not signed"


def test_a_roster_proposal_shows_its_diff_and_never_moves_certified_until(world: World) -> None:
    w = world
    sex = idnumber.sex(w.ids[1])
    csv = (
        HEADER
        # a later certified_until for a known retiree, nothing else changed: ignored
        + f"{w.ids[0]},Retiree 11,{sex},1950-03-07,,,,2030-12-31\n"
        # an amount and a bank account changed, and certified_until again: only the first two
        + f"{w.ids[1]},Retiree 13,{sex},1950-03-07,1999.99,6222000000000555,,2031-01-01\n"
        + f"{NEWCOMER},Li Lei,M,1948-11-30,2000.00,6222000000000099,Li Lei,2026-10-31\n"
        + "110105195003079999,Bad Row,M,1950-03-07,,,,\n"
    )
    with pytest.raises(roster.RosterError, match="id_number"):
        proposals.propose(w.engine, CLERK, "roster_import", {"csv": csv}, now=NOW)
    assert proposals.list_all(w.engine) == [] and _audit(w.engine) == []
    p = proposals.propose(w.engine, CLERK, "roster_import", {"csv": csv, "partial": True}, now=NOW)
    shown = proposals.show(w.engine, p.id)
    assert shown.diff is not None
    assert (shown.diff.added, shown.diff.changed) == (1, 1)
    assert shown.payload["ignored_certified_until"] == 2
    assert shown.payload["skipped_rows"] == 1 and "line 5" in shown.payload["skipped"][0]
    changed = next(r for r in shown.diff.rows if r.change == "changed")
    assert changed.retiree_id == w.ids[1]
    assert changed.before == {"monthly_amount_cents": 100_013, "bank_account": "6222000000000013"}
    assert changed.after == {"monthly_amount_cents": 199_999, "bank_account": "6222000000000555"}
    assert shown.diff.fields["monthly_amount_cents"] == 2
    assert "certified_until ignored on 2 row(s)" in shown.summary
    proposals.recheck(w.engine, REVIEWER, p.id, now=NOW)
    proposals.approve(w.engine, APPROVER, p.id, now=NOW)
    assert _row(w.engine, w.ids[0]).certified_until == dt.date(2026, 12, 31)
    assert _row(w.engine, w.ids[1]).certified_until == dt.date(2026, 12, 31)
    assert _row(w.engine, w.ids[1]).monthly_amount_cents == 199_999
    assert _row(w.engine, NEWCOMER).certified_until == dt.date(2026, 10, 31)  # a new retiree's


def test_roster_import_itself_never_moves_certified_until(world: World) -> None:
    path = world.tmp / "later.csv"
    sex = idnumber.sex(world.ids[0])
    path.write_text(HEADER + f"{world.ids[0]},Retiree 11,{sex},1950-03-07,,,,2099-12-31\n")
    report = roster.import_csv(world.engine, path, now=NOW)
    assert (report.updated, report.unchanged, report.ignored_certified_until) == (0, 1, 1)
    assert _row(world.engine, world.ids[0]).certified_until == dt.date(2026, 12, 31)
    roster.upsert(
        world.engine,
        [{"id_number": world.ids[0], "certified_until": dt.date(2099, 1, 1)}],
        "x",
        NOW,
    )
    assert _row(world.engine, world.ids[0]).certified_until == dt.date(2026, 12, 31)


def test_bad_proposals_name_the_field_and_store_nothing(world: World) -> None:
    w = world
    bad: list[tuple[str, dict[str, Any], str]] = [
        ("nonsense", {}, "kind"),
        ("hold", {"retiree_id": "123", "action": "place", "note": "x"}, "retiree_id"),
        ("hold", {"retiree_id": w.ids[0], "action": "burn", "note": "x"}, "action"),
        ("hold", {"retiree_id": w.ids[0], "action": "place", "note": "a\nb"}, "note"),
        ("hold", {"retiree_id": w.ids[0], "action": "release", "note": "x"}, "no open manual"),
        (
            "retiree_change",
            {"retiree_id": w.ids[0], "monthly_amount": "-1", "note": "x"},
            "monthly_amount",
        ),
        (
            "retiree_change",
            {"retiree_id": w.ids[0], "bank_account": "12ab", "note": "x"},
            "bank_account",
        ),
        ("retiree_change", {"retiree_id": w.ids[0], "note": "x"}, "give monthly_amount"),
        (
            "certification",
            {
                "retiree_id": w.ids[0],
                "certified_until": "2026-06-01",
                "reason": "r",
                "evidence": "e",
            },
            "not after",
        ),
        (
            "certification",
            {
                "retiree_id": w.ids[0],
                "certified_until": "2030-01-01",
                "reason": "r",
                "evidence": "e",
            },
            "validity_months",
        ),
        (
            "certification",
            {"retiree_id": w.ids[0], "certified_until": "2027-01-31", "reason": "r"},
            "evidence",
        ),
        ("bank_make", {"period": "2026-13"}, "period"),
        ("bank_make", {"period": APRIL}, "no payment run"),
        ("roster_import", {}, "give path"),
        ("roster_import", {"path": str(w.tmp / "missing.csv")}, "cannot read"),
    ]
    for kind, payload, message in bad:
        with pytest.raises((proposals.ProposalError, OSError), match=message):
            proposals.propose(w.engine, CLERK, kind, payload, now=NOW)
    assert proposals.list_all(w.engine) == []


def test_a_failed_release_is_recorded_and_can_be_proposed_again(world: World, bank: Bank) -> None:
    w = world
    w.bank = bank
    w.res = _resources(w.tmp, bank)
    _make(w)
    kw = {"resources": w.res, "now": NOW}
    wrong = w.res.cfg.model_copy(
        update={
            "bank": w.res.cfg.bank.model_copy(
                update={"sftp": bank.settings.model_copy(update={"host_key": bank.other_host_key})}
            )
        }
    )
    p = proposals.propose(w.engine, CLERK, "bank_send", {"period": APRIL}, **kw)
    proposals.recheck(w.engine, REVIEWER, p.id, **w.acting(REVIEWER))
    with pytest.raises(Exception, match="host key"):
        proposals.approve(
            w.engine,
            APPROVER,
            p.id,
            resources=Resources(wrong, w.res.sign_key),
            now=NOW,
            code=w.phones.code(APPROVER.staff_id, NOW),
        )
    failed = proposals.show(w.engine, p.id)
    assert failed.status == "failed" and "host key" in (failed.reason or "")
    assert _status(w.engine, APRIL) == "filed"
    again = proposals.propose(w.engine, CLERK, "bank_send", {"period": APRIL}, **kw)
    proposals.recheck(w.engine, REVIEWER, again.id, **w.acting(REVIEWER))
    assert proposals.approve(w.engine, APPROVER, again.id, **w.acting(APPROVER)).status == "applied"
    assert _status(w.engine, APRIL) == "sent"


# -- the second factor ([proposals] second_factor_kinds) -----------------------------------


def _failed_logins(w: World, actor: Actor) -> tuple[int, bool]:
    with w.engine.connect() as conn:
        row = conn.execute(
            sa.select(staff_table).where(staff_table.c.staff_id == actor.staff_id)
        ).one()
    return row.failed_logins, row.locked


def _waiting_for_approval(w: World, kind: str = "bank_make") -> int:
    """A ``kind`` proposal for April, entered and rechecked (with the reviewer's code)."""
    p = proposals.propose(w.engine, CLERK, kind, {"period": APRIL}, resources=w.res, now=NOW)
    proposals.recheck(w.engine, REVIEWER, p.id, **w.acting(REVIEWER))
    return p.id


def _unchanged(w: World, pid: int, entries: int, period: str = "computed") -> None:
    shown = proposals.show(w.engine, pid)
    assert (shown.status, shown.done, len(shown.steps)) == ("open", 2, 2)
    assert len(_audit(w.engine)) == entries and _status(w.engine, APRIL) == period


def test_a_bank_approval_needs_a_current_unused_code(world: World) -> None:
    w = world
    _run(w)
    pid = _waiting_for_approval(w)
    entries = len(_audit(w.engine))
    plain = {"resources": w.res, "now": NOW}
    with pytest.raises(proposals.RefusedError, match=r"^otp: proposal \d+ \(bank_make\) needs"):
        proposals.approve(w.engine, APPROVER, pid, **plain)
    right = w.phones.code(APPROVER.staff_id, NOW)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    with pytest.raises(proposals.RefusedError, match="otp: wrong code"):
        proposals.approve(w.engine, APPROVER, pid, code=wrong, **plain)
    with pytest.raises(proposals.RefusedError, match="otp: a code is 6 digits"):
        proposals.approve(w.engine, APPROVER, pid, code="12ab56", **plain)
    _unchanged(w, pid, entries)
    assert _failed_logins(w, APPROVER) == (1, False)  # the wrong code only
    # someone who never enrolled is told to
    with w.engine.begin() as conn:
        accounts.insert(conn, SETUP, "approver-2", "Approver Two", [Role.APPROVER])
    newcomer = Actor("approver-2", frozenset({Role.APPROVER}))
    with pytest.raises(proposals.RefusedError, match="has none enrolled: enrol first"):
        proposals.approve(w.engine, newcomer, pid, code=right, **plain)
    _unchanged(w, pid, entries)
    done = proposals.approve(w.engine, APPROVER, pid, code=right, **plain)
    assert done.status == "applied" and _status(w.engine, APRIL) == "filed"
    assert _failed_logins(w, APPROVER) == (0, False)  # a good code clears the count
    # the same code again (the same time step) is refused, and nothing changes
    sending = _waiting_for_approval(w, "bank_send")
    entries = len(_audit(w.engine))
    with pytest.raises(proposals.RefusedError, match="otp: this code was used already"):
        proposals.approve(w.engine, APPROVER, sending, code=right, **plain)
    _unchanged(w, sending, entries, "filed")
    assert _failed_logins(w, APPROVER) == (1, False)


def test_only_the_listed_kinds_need_a_code(world: World) -> None:
    w = world
    hold = CASES["hold"].payload(w)
    p = proposals.propose(w.engine, CLERK, "hold", hold, now=NOW)
    assert proposals.approve(w.engine, APPROVER, p.id, resources=w.res, now=NOW).status == (
        "applied"
    )
    listed = w.res.cfg.model_copy(
        update={"proposals": ProposalSettings(second_factor_kinds=("hold",))}
    )
    w.res = Resources(listed, w.res.sign_key)
    release = {**hold, "action": "release"}
    p = proposals.propose(w.engine, CLERK, "hold", release, resources=w.res, now=NOW)
    with pytest.raises(proposals.RefusedError, match=r"\(hold\) needs a second factor"):
        proposals.approve(w.engine, APPROVER, p.id, resources=w.res, now=NOW)
    assert proposals.approve(w.engine, APPROVER, p.id, **w.acting(APPROVER)).status == "applied"
    _run(w)
    made = proposals.propose(w.engine, CLERK, "bank_make", {"period": APRIL}, resources=w.res)
    proposals.recheck(w.engine, REVIEWER, made.id, resources=w.res, now=NOW)
    proposals.approve(w.engine, APPROVER, made.id, resources=w.res, now=NOW)
    assert _status(w.engine, APRIL) == "filed"


def test_the_listed_kinds_must_be_kinds(tmp_path: Path) -> None:
    toml = tmp_path / "central.toml"
    toml.write_text('[proposals]\nsecond_factor_kinds = ["bank_make", "bank_sent"]\n')
    with pytest.raises(ConfigError, match=r"proposals\.second_factor_kinds.*bank_send"):
        config.load(toml)


def test_wrong_codes_lock_the_account_and_signing_in_does_not_clear_them(world: World) -> None:
    w = world
    cfg = w.res.cfg.model_copy(
        update={"staff": w.res.cfg.staff.model_copy(update={"max_failed_logins": 3})}
    )
    w.res = Resources(cfg, w.res.sign_key)
    _run(w)
    pid = _waiting_for_approval(w)
    plain = {"resources": w.res, "now": NOW}
    right = w.phones.code(APPROVER.staff_id, NOW)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(2):
        with pytest.raises(proposals.RefusedError, match="wrong code"):
            proposals.approve(w.engine, APPROVER, pid, code=wrong, **plain)
    assert _failed_logins(w, APPROVER) == (2, False)
    with w.engine.begin() as conn:  # signing in again clears failed sign-ins, not codes
        accounts.signed_in(conn, accounts.need(conn, APPROVER.staff_id))
    assert _failed_logins(w, APPROVER) == (0, False)
    with pytest.raises(proposals.RefusedError, match="wrong code"):
        proposals.approve(w.engine, APPROVER, pid, code=wrong, **plain)
    assert _failed_logins(w, APPROVER) == (1, True)
    with w.engine.connect() as conn:
        out = conn.execute(
            sa.select(audit_log).where(audit_log.c.action == "staff.locked_out")
        ).one()
    assert out.staff_id == APPROVER.staff_id and "second factor: otp: wrong code" in out.after
    with pytest.raises(proposals.RefusedError, match="locked: an administrator must unlock"):
        proposals.approve(w.engine, APPROVER, pid, code=right, **plain)
    _unchanged(w, pid, len(_audit(w.engine)))
    accounts.unlock(w.engine, SETUP, APPROVER.staff_id)
    assert proposals.approve(w.engine, APPROVER, pid, code=right, **plain).status == "applied"


# -- recovery codes in place of a TOTP code -------------------------------------------------


def _holds_waiting(w: World, count: int) -> list[int]:
    """``count`` holds (on different retirees) waiting for approval, with ``hold`` listed
    in ``[proposals] second_factor_kinds``."""
    listed = w.res.cfg.model_copy(
        update={"proposals": ProposalSettings(second_factor_kinds=("hold",))}
    )
    w.res = Resources(listed, w.res.sign_key)
    return [
        proposals.propose(
            w.engine,
            CLERK,
            "hold",
            {"retiree_id": retiree, "action": "place", "note": "letter returned"},
            now=NOW,
        ).id
        for retiree in w.ids[:count]
    ]


def _recovery_left(w: World, actor: Actor) -> int:
    with w.engine.connect() as conn:
        return recovery.left(conn, actor.staff_id)


def test_one_recovery_code_used_twice_at_once_approves_once(world: World) -> None:
    w = world
    pids = _holds_waiting(w, 2)
    code = w.phones.recovery[APPROVER.staff_id][0]
    start = threading.Barrier(2)
    outcomes: dict[int, Any] = {}

    def approve(pid: int) -> Callable[[], None]:
        def run() -> None:
            start.wait()
            try:
                outcomes[pid] = proposals.approve(
                    w.engine, APPROVER, pid, code=code, resources=w.res, now=NOW
                )
            except proposals.RefusedError as refused:
                outcomes[pid] = refused

        return run

    threads = [threading.Thread(target=approve(pid)) for pid in pids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    done = [o for o in outcomes.values() if isinstance(o, proposals.Proposal)]
    refused = [o for o in outcomes.values() if isinstance(o, proposals.RefusedError)]
    assert len(done) == 1 and len(refused) == 1, outcomes
    assert done[0].status == "applied" and done[0].recovery_codes_left == 9
    assert "wrong recovery code, or one used already" in str(refused[0])
    assert _recovery_left(w, APPROVER) == 9
    assert _failed_logins(w, APPROVER) == (1, False)
    with w.engine.connect() as conn:
        used = conn.execute(
            sa.select(audit_log).where(audit_log.c.action == "staff.otp_recovery_use")
        ).all()
    assert [json.loads(u.after)["recovery_codes"] for u in used] == [9]
    assert code not in used[0].after and code.replace("-", "") not in used[0].after


def test_wrong_recovery_codes_lock_the_account_and_a_locked_one_keeps_its_codes(
    world: World,
) -> None:
    w = world
    cfg = w.res.cfg.model_copy(
        update={"staff": w.res.cfg.staff.model_copy(update={"max_failed_logins": 3})}
    )
    w.res = Resources(cfg, w.res.sign_key)
    (pid,) = _holds_waiting(w, 1)
    plain = {"resources": w.res, "now": NOW}
    for guess in ("ABCDE-FGHJK", "abcde fghjm", "ZZZZZZZZZZ"):
        with pytest.raises(proposals.RefusedError, match="wrong recovery code"):
            proposals.approve(w.engine, APPROVER, pid, code=guess, **plain)
    assert _failed_logins(w, APPROVER) == (3, True)
    good = w.phones.recovery[APPROVER.staff_id][0]
    with pytest.raises(proposals.RefusedError, match="locked: an administrator must unlock"):
        proposals.approve(w.engine, APPROVER, pid, code=good, **plain)
    assert _recovery_left(w, APPROVER) == 10  # refused while locked: not used up
    accounts.unlock(w.engine, SETUP, APPROVER.staff_id)
    done = proposals.approve(w.engine, APPROVER, pid, code=good, **plain)
    assert done.status == "applied" and done.recovery_codes_left == 9
    assert _failed_logins(w, APPROVER) == (0, False)
