"""Assisted results: the staff member named must be known to central and allowed at the
terminal's site (else quarantined with the reason); passes the policy sends to review (age,
a second assisted pass in a row) are stored, not applied, acked, queued, and certify only by
an approved decision; SQLite and PostgreSQL."""

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from central import proposals
from central.certification import assisted as share
from central.certification.devices import DeviceTrust
from central.certification.ingest import Inbound, Ingestor, Status
from central.certification.policy import add_months
from central.certification.settings import Policy
from central.people import roster
from central.proposals import assisted
from central.staff.identity import Actor, Role
from central.store import schema
from common import idnumber
from tests.fixtures.database import CentralPki, Terminal, known_staff

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC)  # the roster's date; results are received at the clock's now
OLD = idnumber.make("110105", dt.date(1930, 3, 7), 124)  # 96 years old
YOUNG = idnumber.make("310104", dt.date(1950, 11, 30), 31)
CLERK = Actor("clerk-1", frozenset({Role.ENTRY_CLERK}))
APPROVER = Actor("approver-1", frozenset({Role.APPROVER}))
REVIEWER = Actor("reviewer-1", frozenset({Role.REVIEWER}))


def _decide(engine: Any, result: Any, decision: str, reason: str) -> Any:
    [item] = assisted.referred(engine)
    assert item["result_id"] == str(result.result_id)
    payload = {"result_id": item["result_id"], "decision": decision, "reason": reason}
    return proposals.propose(engine, CLERK, "assisted_review", payload)


@pytest.fixture
def world(migrated_engine: Any, central_pki: CentralPki) -> dict[str, Any]:
    people = [
        {"id_number": n, "name": f"P {n[-4:]}", "sex": idnumber.sex(n), "birth_date": b}
        for n, b in ((OLD, dt.date(1930, 3, 7)), (YOUNG, dt.date(1950, 11, 30)))
    ]
    roster.upsert(migrated_engine, people, "test", NOW)
    known_staff(migrated_engine, "staff-7")  # allowed at the default site
    trust = DeviceTrust(
        central_pki.ca_file, central_pki.crl_file, central_pki.devices_dir, check_interval_s=0
    )
    return {"engine": migrated_engine, "term": central_pki.terminal("term-0001"), "trust": trust}


def _send(ingestor: Ingestor, term: Terminal, retiree: str) -> Any:
    result = term.result(retiree)
    return ingestor.apply(Inbound(term.topic(), term.sign(result), dt.datetime.now(dt.UTC))), result


def _until(engine: Any, retiree: str) -> dt.date | None:
    with engine.connect() as conn:
        return conn.scalar(
            sa.select(schema.retirees.c.certified_until).where(
                schema.retirees.c.id_number == retiree
            )
        )


def _applied(engine: Any, result_id: Any) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.scalar(
                sa.select(schema.results.c.applied).where(schema.results.c.result_id == result_id)
            )
        )


def test_an_old_retirees_assisted_pass_waits_for_an_approver(world: dict[str, Any]) -> None:
    engine, term = world["engine"], world["term"]
    ingestor = Ingestor(engine, world["trust"], Policy())
    outcome, result = _send(ingestor, term, OLD)
    assert outcome.status is Status.APPLIED and outcome.ack is not None
    assert (outcome.ack.reason, outcome.ack.certified_until) == ("referred_for_review", None)
    assert _until(engine, OLD) is None and not _applied(engine, result.result_id)
    [item] = assisted.referred(engine)
    assert (item["staff_id"], item["device_id"]) == ("staff-7", "term-0001")
    assert item["why"].startswith("age 96 >= 90")
    with pytest.raises(proposals.ProposalError, match="result_id"):
        proposals.propose(engine, CLERK, "assisted_review", {"result_id": "nope"})
    waiting = _decide(engine, result, "certify", "called the family: alive")
    assert assisted.referred(engine) == []  # decided (waiting for approval)
    with pytest.raises(proposals.ProposalError, match="decided in proposal"):
        proposals.propose(
            engine, CLERK, "assisted_review",
            {"result_id": str(result.result_id), "decision": "certify", "reason": "again"},
        )  # fmt: skip
    with pytest.raises(proposals.RefusedError, match="approver role"):
        proposals.approve(engine, REVIEWER, waiting.id)
    assert _until(engine, OLD) is None
    done = proposals.approve(engine, APPROVER, waiting.id)
    assert done.status == "applied"
    expected = add_months(result.device_time.date(), 12)
    assert _until(engine, OLD) == expected and _applied(engine, result.result_id)


def test_a_second_assisted_pass_in_a_row_is_reviewed_and_can_be_rejected(
    world: dict[str, Any],
) -> None:
    engine, term = world["engine"], world["term"]
    ingestor = Ingestor(engine, world["trust"], Policy())
    first, _ = _send(ingestor, term, YOUNG)
    assert first.ack is not None and first.ack.reason is None
    until = _until(engine, YOUNG)
    assert until is not None
    second, result = _send(ingestor, term, YOUNG)
    assert second.ack is not None and second.ack.reason == "referred_for_review"
    assert "second assisted pass in a row" in assisted.referred(engine)[0]["why"]
    waiting = _decide(engine, result, "refuse", "staff-7 assisted twice: visit first")
    done = proposals.approve(engine, APPROVER, waiting.id)
    assert done.status == "applied" and _until(engine, YOUNG) == until
    assert not _applied(engine, result.result_id) and assisted.referred(engine) == []
    # with the policy off, the same pass certifies at once
    relaxed = Ingestor(engine, world["trust"], Policy(assisted_review_repeat=False))
    third, _ = _send(relaxed, term, YOUNG)
    assert third.ack is not None and third.ack.reason is None


def test_a_review_is_stale_once_the_retiree_was_certified_otherwise(
    world: dict[str, Any],
) -> None:
    engine, term = world["engine"], world["term"]
    ingestor = Ingestor(engine, world["trust"], Policy())
    _, result = _send(ingestor, term, OLD)
    waiting = _decide(engine, result, "certify", "seen on video call")
    with engine.begin() as conn:  # e.g. a face pass at a kiosk applied meanwhile
        conn.execute(
            schema.retirees.update()
            .where(schema.retirees.c.id_number == OLD)
            .values(certified_until=dt.date(2031, 1, 1))
        )
    with pytest.raises(proposals.StaleError):
        proposals.approve(engine, APPROVER, waiting.id)
    assert _until(engine, OLD) == dt.date(2031, 1, 1)


def test_an_assisted_result_names_staff_known_at_the_terminals_site(
    world: dict[str, Any], central_pki: CentralPki
) -> None:
    engine, term = world["engine"], world["term"]
    ingestor = Ingestor(engine, world["trust"], Policy())
    known_staff(engine, "desk-far", sites=("riverside",))
    for staff_id, reason, detail in [
        ("nobody-at-all", "unknown_staff", "'nobody-at-all' is no active account"),
        ("desk-far", "staff_not_at_site", "may not assist at site 'default'"),
    ]:
        result = term.result(YOUNG, assisted={"staff_id": staff_id, "document": "id_card"})
        outcome = ingestor.apply(Inbound(term.topic(), term.sign(result), dt.datetime.now(dt.UTC)))
        assert outcome.status is Status.REJECTED and outcome.reason is not None
        assert outcome.reason.value == reason and detail in outcome.detail
        assert outcome.ack is not None and outcome.ack.reason == reason
    assert _until(engine, YOUNG) is None
    with engine.connect() as conn:
        assert sorted(conn.scalars(sa.select(schema.quarantine.c.reason))) == [
            "staff_not_at_site",
            "unknown_staff",
        ]
    # allowed at the site of the terminal's certificate (its OU): certifies
    riverside = central_pki.terminal("term-0099", site="riverside")
    result = riverside.result(YOUNG, assisted={"staff_id": "desk-far", "document": "id_card"})
    outcome = ingestor.apply(
        Inbound(riverside.topic(), riverside.sign(result), dt.datetime.now(dt.UTC))
    )
    assert outcome.status is Status.APPLIED and _until(engine, YOUNG) is not None


def test_the_assisted_share_per_staff_member_and_terminal(world: dict[str, Any]) -> None:
    engine, term = world["engine"], world["term"]
    ingestor = Ingestor(engine, world["trust"], Policy())
    known_staff(engine, "desk-2")
    _send(ingestor, term, YOUNG)  # staff-7: applied
    _send(ingestor, term, OLD)  # staff-7: referred (age)
    other = term.result(YOUNG, assisted={"staff_id": "desk-2", "document": "id_card"})
    # desk-2: referred (repeat)
    ingestor.apply(Inbound(term.topic(), term.sign(other), dt.datetime.now(dt.UTC)))
    found = share.report(engine, NOW - dt.timedelta(days=1))
    assert found.staff == [
        {"staff_id": "staff-7", "assisted": 2, "share_pct": 66.7, "terminals": 1, "referred": 1},
        {"staff_id": "desk-2", "assisted": 1, "share_pct": 33.3, "terminals": 1, "referred": 1},
    ]
    assert found.terminals == [
        {
            "device_id": "term-0001",
            "results": 3,
            "assisted": 3,
            "assisted_pct": 100.0,
            "referred": 2,
        }
    ]
    assert share.report(engine, NOW + dt.timedelta(days=1)).staff == []
