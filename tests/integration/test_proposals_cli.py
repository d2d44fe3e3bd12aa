"""Proposals through the CLI as three signed-in staff members with real staff certificates,
on SQLite and PostgreSQL: a roster diff, a manual certification, refusals, rejection, bad
input; anonymous changes refused."""

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from central.certification.devices import DeviceTrust
from central.certification.ingest import Inbound, Ingestor
from central.certification.settings import Policy
from central.store import db, schema
from common import idnumber
from tests.fixtures.database import CentralPki, known_staff
from tests.fixtures.proposals import WANG, StaffCli, wang_cli

pytestmark = pytest.mark.integration

LI = idnumber.make("310104", dt.date(1948, 11, 30), 31)
HEADER = "id_number,name,sex,birth_date,monthly_amount,certified_until\n"


@pytest.fixture
def cli(migrated_url: str, tmp_path: Path) -> StaffCli:
    return wang_cli(migrated_url, tmp_path)


def _retiree(url: str, number: str) -> Any:
    engine = db.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.select(schema.retirees).where(schema.retirees.c.id_number == number)
            ).first()
    finally:
        engine.dispose()


def test_a_roster_diff_through_three_people(cli: Any, tmp_path: Path) -> None:
    csv = tmp_path / "april.csv"
    csv.write_text(
        HEADER + f"{WANG},Wang Fang,F,1950-03-07,3300.00,2030-01-01\n"
        f"{LI},Li Wei,M,1948-11-30,2800.00,\n"
    )
    anonymous = cli("roster", "import", str(csv))
    assert anonymous.exit_code == 1 and "this command changes data: sign in" in anonymous.output
    wrong = cli("roster", "import", str(csv), who="reviewer")
    assert wrong.exit_code == 1 and "may not proposal.enter" in wrong.output
    proposed = cli("roster", "import", str(csv), who="clerk")
    assert proposed.exit_code == 0, proposed.output
    assert proposed.output.splitlines() == [
        "proposal 1: roster april.csv: 1 added, 1 changed, certified_until ignored on 1 row(s)",
        "waits for: recheck by a reviewer (level 2 of 3)",
    ]
    shown = cli("proposals", "show", "1", who="approver").output
    assert "diff: 1 added, 1 changed; fields: " in shown
    assert f"{WANG}  changed  monthly_amount_cents: 320050 -> 330000" in shown
    assert (
        json.loads(cli("proposals", "show", "1", "--json", who="clerk").output)["diff"]["added"]
        == 1
    )
    assert json.loads(cli("proposals", "list", "--json", who="approver").output) == []
    assert [
        p["id"] for p in json.loads(cli("proposals", "list", "--json", who="reviewer").output)
    ] == [1]
    early = cli("proposals", "approve", "1", who="approver")
    assert early.exit_code == 1 and "waits for recheck" in early.output
    own = cli("proposals", "recheck", "1", who="clerk")
    assert own.exit_code == 1 and "may not proposal.recheck" in own.output
    assert _retiree(cli.url, LI) is None
    checked = cli("proposals", "recheck", "1", "--reason", "matches the export", who="reviewer")
    assert "waits for: approve by an approver (level 3 of 3)" in checked.output
    twice = cli("proposals", "approve", "1", who="reviewer")
    assert twice.exit_code == 1 and "may not proposal.approve" in twice.output
    done = cli("proposals", "approve", "1", who="approver")
    assert done.exit_code == 0, done.output
    assert "proposal 1: approved by approver; applied" in done.output
    wang = _retiree(cli.url, WANG)
    assert (wang.monthly_amount_cents, wang.certified_until) == (330_000, dt.date(2026, 12, 31))
    assert _retiree(cli.url, LI).name == "Li Wei"
    steps = json.loads(cli("proposals", "show", "1", "--json", who="clerk").output)["steps"]
    assert [(s["staff_id"], s["action"]) for s in steps] == [
        ("clerk", "enter"), ("reviewer", "recheck"), ("approver", "approve")
    ]  # fmt: skip


def test_certify_by_hand_rejected_with_a_reason_and_bad_input(cli: Any) -> None:
    until = (dt.date.today() + dt.timedelta(days=200)).isoformat()
    proposed = cli(
        "retirees", "certify", WANG, "--until", until, "--reason", "home visit",
        "--evidence", "visit report 117", who="clerk",
    )  # fmt: skip
    assert proposed.exit_code == 0, proposed.output
    no_reason = cli("proposals", "reject", "1", who="reviewer")
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output
    rejected = cli("proposals", "reject", "1", "--reason", "no signature", who="reviewer")
    assert "rejected: no signature" in rejected.output
    assert _retiree(cli.url, WANG).certified_until == dt.date(2026, 12, 31)
    closed = cli("proposals", "approve", "1", who="approver")
    assert closed.exit_code == 1 and "is rejected" in closed.output
    for args, message in [
        (["proposals", "show", "99"], "no proposal 99"),
        (["retirees", "certify", WANG, "--until", "someday", "--reason", "r", "--evidence", "e"],
         "certified_until: a date"),
        (["retirees", "change", WANG, "--bank-account", "12ab", "--note", "n"], "bank_account"),
        (["holds", "release", WANG, "--note", "n"], "no open manual hold"),
        (["bank", "make", "2026-04"], "no payment run for 2026-04"),
    ]:  # fmt: skip
        done = cli(*args, who="clerk")
        assert done.exit_code == 1 and message in done.output, (args, done.output)
        assert "Traceback" not in done.output
    assert len(json.loads(cli("proposals", "list", "--all", "--json", who="clerk").output)) == 1


def test_assisted_queue_decision_and_report(cli: Any, central_pki: CentralPki) -> None:
    engine = db.create_engine(cli.url)
    known_staff(engine, "staff-7")
    term = central_pki.terminal("term-0001")
    trust = DeviceTrust(central_pki.ca_file, central_pki.crl_file, central_pki.devices_dir)
    ingestor = Ingestor(engine, trust, Policy())
    now = dt.datetime.now(dt.UTC)
    for _ in range(2):  # the second assisted pass in a row is referred
        ingestor.apply(Inbound(term.topic(), term.sign(term.result(WANG)), now))
    engine.dispose()
    anonymous = cli("assisted", "referred")
    assert anonymous.exit_code == 1 and "sign in" in anonymous.output
    [item] = json.loads(cli("assisted", "referred", "--json", who="reviewer").output)
    assert item["staff_id"] == "staff-7" and "in a row" in item["why"]
    decided = cli(
        "assisted", "decide", item["result_id"], "--certify", "--reason", "called", who="clerk"
    )
    assert "waits for: approve by an approver (level 2 of 2)" in decided.output
    assert '"certified_until"' in cli.through(decided).output
    assert _retiree(cli.url, WANG).certified_until == dt.date.fromisoformat(item["certified_until"])
    report = json.loads(cli("assisted", "report", "--json", who="reviewer").output)
    assert report["staff"][0]["staff_id"] == "staff-7" and report["staff"][0]["assisted"] == 2
