"""Policy parameters versioned with effective dates (issue 14), on SQLite and PostgreSQL: a
version is a proposal, never edited; the policy in force on a day is the latest version
effective on or before it, else ``[policy]``; ingest certifies and refers by it; the CLI."""

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from central import proposals
from central.certification import versions
from central.certification.devices import DeviceTrust
from central.certification.ingest import Inbound, Ingestor
from central.certification.policy import add_months
from central.certification.settings import Policy
from central.people import roster
from central.staff.identity import Actor, Role
from central.store import schema
from common import idnumber
from tests.fixtures.database import CentralPki, known_staff
from tests.fixtures.proposals import staff_cli

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 5, 3, 9, tzinfo=dt.UTC)
CLERK = Actor("clerk-1", frozenset({Role.ENTRY_CLERK}))
REVIEWER = Actor("reviewer-1", frozenset({Role.REVIEWER}))
APPROVER = Actor("approver-1", frozenset({Role.APPROVER}))
D = dt.date


def _version(engine: Any, day: dt.date, now: dt.datetime = NOW, **params: Any) -> Any:
    """Propose a version from ``day`` and take it through its three levels."""
    payload = {"effective_from": day.isoformat(), "params": params, "note": "test"}
    entered = proposals.propose(engine, CLERK, "policy", payload, now=now)
    proposals.recheck(engine, REVIEWER, entered.id, now=now)
    return proposals.approve(engine, APPROVER, entered.id, now=now)


def test_the_version_in_force_on_a_day(migrated_engine: Any) -> None:
    engine, fallback = migrated_engine, Policy()
    book = versions.PolicyBook(engine, fallback, ttl_s=0)
    assert book.on(D(2030, 1, 1)) is fallback
    done = _version(engine, D(2026, 6, 1), validity_months=24)
    assert done.status == "applied" and done.result is not None
    _version(engine, D(2026, 7, 1), grace_days=10)
    _version(engine, D(2026, 6, 15), assisted_review_age=None)  # entered later, earlier date
    assert book.on(D(2026, 5, 31)) is fallback
    assert book.on(D(2026, 6, 1)).validity_months == 24
    mid = book.on(D(2026, 6, 20))
    assert (mid.validity_months, mid.grace_days, mid.assisted_review_age) == (24, 0, None)
    july = book.on(D(2026, 7, 1))  # a complete set: made on the 1 June version
    assert (july.validity_months, july.grace_days, july.assisted_review_age) == (24, 10, 90)
    assert july.timezone == fallback.timezone
    with engine.connect() as conn:
        assert [v.effective_from for v in versions.history(conn)] == [
            D(2026, 6, 1), D(2026, 6, 15), D(2026, 7, 1)
        ]  # fmt: skip
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(versions.policy_versions.update().values(params={}))


def test_refusals_change_nothing(migrated_engine: Any) -> None:
    engine = migrated_engine

    def propose(day: str, **params: Any) -> Any:
        payload = {"effective_from": day, "params": params, "note": ""}
        return proposals.propose(engine, CLERK, "policy", payload, now=NOW)

    with pytest.raises(proposals.ProposalError, match="effective_from: 2026-05-02 has passed"):
        propose("2026-05-02", grace_days=3)
    with pytest.raises(proposals.ProposalError, match="effective_from: a date"):
        propose("May", grace_days=3)
    with pytest.raises(proposals.ProposalError, match="timezone cannot be versioned"):
        propose("2026-06-01", timezone="Asia/Shanghai")
    with pytest.raises(proposals.ProposalError, match="validity_months: Input should be"):
        propose("2026-06-01", validity_months=0)
    with pytest.raises(proposals.ProposalError, match="has these values"):
        propose("2026-06-01", grace_days=0)
    with pytest.raises(proposals.RefusedError, match="entry_clerk role"):
        proposals.propose(
            engine, APPROVER, "policy", {"effective_from": "2026-06-01", "params": {}}, now=NOW
        )
    first, second = propose("2026-06-01", grace_days=5), propose("2026-06-01", grace_days=7)
    with pytest.raises(proposals.RefusedError, match="entered proposal"):
        proposals.recheck(engine, CLERK, first.id, now=NOW)
    proposals.recheck(engine, REVIEWER, first.id, now=NOW)
    with pytest.raises(proposals.RefusedError, match="already took a step"):
        proposals.approve(engine, REVIEWER, first.id, now=NOW)
    other_reviewer = Actor("reviewer-2", frozenset({Role.REVIEWER}))
    with pytest.raises(proposals.RefusedError, match="approver role"):
        proposals.approve(engine, other_reviewer, first.id, now=NOW)
    proposals.approve(engine, APPROVER, first.id, now=NOW)
    with pytest.raises(proposals.StaleError, match="is stale"):
        proposals.recheck(engine, REVIEWER, second.id, now=NOW)
    late = propose("2026-06-02", grace_days=9)
    proposals.recheck(engine, REVIEWER, late.id, now=NOW)
    after = NOW + dt.timedelta(days=31)
    with pytest.raises(proposals.ProposalError, match="passed before the approval"):
        proposals.approve(engine, APPROVER, late.id, now=after)
    with engine.connect() as conn:
        assert [v.params["grace_days"] for v in versions.history(conn)] == [5]


@pytest.fixture
def world(migrated_engine: Any, central_pki: CentralPki) -> dict[str, Any]:
    born = D(1930, 3, 7)
    old = idnumber.make("110105", born, 124)
    people = [{"id_number": old, "name": "P Old", "sex": idnumber.sex(old), "birth_date": born}]
    roster.upsert(migrated_engine, people, "test", dt.datetime.now(dt.UTC))
    known_staff(migrated_engine, "staff-7")
    trust = DeviceTrust(
        central_pki.ca_file, central_pki.crl_file, central_pki.devices_dir, check_interval_s=0
    )
    return {"engine": migrated_engine, "term": central_pki.terminal("term-0001"), "trust": trust,
            "old": old}  # fmt: skip


def test_ingest_certifies_and_refers_by_the_version_in_force(world: dict[str, Any]) -> None:
    engine, term, old = world["engine"], world["term"], world["old"]
    now = dt.datetime.now(dt.UTC)
    today = now.date()
    _version(engine, today + dt.timedelta(days=1), now=now, assisted_review_age=None)
    book = versions.PolicyBook(engine, Policy(), ttl_s=0)
    ingestor = Ingestor(engine, world["trust"], Policy(), book=book)
    first = ingestor.apply(Inbound(term.topic(), term.sign(term.result(old)), now))
    assert first.ack is not None and first.ack.reason == "referred_for_review"  # tomorrow's
    _version(engine, today, now=now, assisted_review_age=None, validity_months=24)
    result = term.result(old)
    second = ingestor.apply(Inbound(term.topic(), term.sign(result), now))
    assert second.ack is not None and second.ack.reason is None
    with engine.connect() as conn:
        until = conn.scalar(
            sa.select(schema.retirees.c.certified_until).where(schema.retirees.c.id_number == old)
        )
    assert until == add_months(result.device_time.date(), 24)


def test_the_policy_commands(migrated_url: str, tmp_path: Path) -> None:
    config = tmp_path / "central.toml"
    config.write_text(f'[database]\nurl = "{migrated_url}"\n[policy]\ngrace_days = 2\n')
    cli = staff_cli(config, migrated_url, tmp_path / "staff")
    anonymous = cli("policy", "show")
    assert anonymous.exit_code == 1 and "sign in" in anonymous.output
    shown = json.loads(cli("policy", "show", "--json", who="clerk").output)
    assert shown["source"] == "central.toml" and shown["params"]["grace_days"] == 2
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    proposed = cli(
        "policy", "propose", "--effective-from", tomorrow, "grace_days=15",
        "assisted_review_age=none", "--note", "circular 12", who="clerk",
    )  # fmt: skip
    assert "grace_days 2 -> 15; assisted_review_age 90 -> None" in proposed.output
    cli.through(proposed)
    later = json.loads(cli("policy", "show", "--date", tomorrow, "--json", who="reviewer").output)
    assert later["params"]["grace_days"] == 15 and later["params"]["assisted_review_age"] is None
    now = json.loads(cli("policy", "show", "--json", who="reviewer").output)
    assert now["params"]["grace_days"] == 2
    listed = json.loads(cli("policy", "history", "--json", who="approver").output)
    assert [(v["effective_from"], v["approved_by"], v["note"]) for v in listed] == [
        (tomorrow, "approver", "circular 12")
    ]
    bad = cli("policy", "propose", "--effective-from", tomorrow, "grace", who="clerk")
    assert bad.exit_code == 2 and "use NAME=VALUE" in bad.output
    worse = cli("policy", "propose", "--effective-from", tomorrow, "grace_days=-1", who="clerk")
    assert worse.exit_code == 1 and "grace_days: Input should be" in worse.output
