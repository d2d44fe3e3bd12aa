"""Reminders: stages, at most once per stage and due cycle, opt-out, languages, the report,
the CLI (SQLite and PostgreSQL)."""

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from central.certification.settings import Policy
from central.cli import main
from central.notify import outbox, reminders
from central.notify.settings import ReminderSettings
from central.payments import runs
from central.payments.period import Period
from central.people import roster
from central.store import schema
from common import idnumber

pytestmark = pytest.mark.integration

ON = dt.date(2027, 1, 1)
NOW = dt.datetime(2027, 1, 1, 8, tzinfo=dt.UTC)
SETTINGS = ReminderSettings(days_before=[30, 7])
BORN = dt.date(1950, 3, 7)


def _person(seq: int, until: dt.date | None, **contact: Any) -> dict[str, Any]:
    number = idnumber.make("110105", BORN, 100 + 2 * seq)
    return {
        "id_number": number,
        "name": f"Retiree {seq}",
        "sex": idnumber.sex(number),
        "birth_date": BORN,
        "monthly_amount_cents": 320_000,
        "bank_account": f"62220000000{seq:05d}",
        "account_name": f"Retiree {seq}",
        "certified_until": until,
        "phone": f"+86138001{seq:05d}",
    } | contact


PEOPLE = {
    "soon": _person(1, dt.date(2027, 1, 20)),  # 19 days: before30
    "week": _person(2, dt.date(2027, 1, 5), language="en"),  # 4 days: before7
    "today": _person(3, ON, phone=None, email="three@example.org"),  # due, by e-mail
    "later": _person(4, dt.date(2027, 3, 1)),  # nothing yet
    "opted": _person(5, dt.date(2027, 1, 20), reminders_opt_out=True),
    "unreachable": _person(6, dt.date(2027, 1, 20), phone=None),
    "kin": _person(7, dt.date(2027, 1, 20), phone=None, kin_phone="+8613900000007"),
    "held": _person(8, dt.date(2026, 11, 30)),  # held in January's run
    "dead": _person(9, dt.date(2027, 1, 20), status="deceased"),
}


def _ids(*names: str) -> set[str]:
    return {PEOPLE[n]["id_number"] for n in names}


@pytest.fixture
def roster_in(central_engine: Any) -> Any:
    roster.upsert(central_engine, PEOPLE.values(), "test", NOW - dt.timedelta(days=90))
    runs.run(central_engine, Period(2027, 1), Policy(), now=NOW)
    return central_engine


def _outbox(engine: Any) -> dict[str, Any]:
    with engine.connect() as conn:
        return {r.key: r for r in conn.execute(sa.select(outbox.outbox))}


def test_stages_once_per_cycle_opt_out_and_language(roster_in: Any) -> None:
    engine = roster_in
    stopped = threading.Event()
    stopped.set()  # a service stopping: nothing more is enqueued
    assert sum(reminders.run(engine, ON, SETTINGS, Policy(), stop=stopped).enqueued.values()) == 0
    summary = reminders.run(engine, ON, SETTINGS, Policy())
    assert summary.enqueued == {"before30": 2, "before7": 1, "due": 1, "hold": 1}
    sent = _outbox(engine)
    by_retiree = {k.rsplit(":", 1)[1]: (k.split(":")[1], r) for k, r in sent.items()}
    assert set(by_retiree) == _ids("soon", "week", "today", "kin", "held")
    stage, week = by_retiree[PEOPLE["week"]["id_number"]]
    assert stage == "before7" and week.language == "en"
    assert "Dear Retiree 2" in week.body and "2027-01-05 (4 days" in week.body
    stage, soon = by_retiree[PEOPLE["soon"]["id_number"]]
    assert stage == "before30" and "2027-01-20" in soon.body and soon.channel == "sms"
    assert "养老金" in soon.subject and soon.recipient == PEOPLE["soon"]["phone"]
    _, today = by_retiree[PEOPLE["today"]["id_number"]]
    assert (today.channel, today.recipient) == ("email", "three@example.org")
    _, kin = by_retiree[PEOPLE["kin"]["id_number"]]
    assert kin.recipient == "+8613900000007"
    _, held = by_retiree[PEOPLE["held"]["id_number"]]
    assert "2027-01" in held.body and "2026-11-30" in held.body

    # again, and the next day: nothing twice
    assert sum(reminders.run(engine, ON, SETTINGS, Policy()).enqueued.values()) == 0
    again = reminders.run(engine, ON + dt.timedelta(days=1), SETTINGS, Policy())
    assert again.enqueued == {"before30": 0, "before7": 0, "due": 0, "hold": 0}
    # "soon" enters the 7-day window: its next stage goes out, once
    later = reminders.run(engine, dt.date(2027, 1, 14), SETTINGS, Policy())
    assert later.enqueued["before7"] == 2  # soon and kin
    assert later.enqueued["due"] == 0  # week's due date is past the catch-up window


def test_report_who_reacted(roster_in: Any) -> None:
    engine = roster_in
    reminders.run(engine, ON, SETTINGS, Policy())
    with engine.begin() as conn:  # "held" certifies (as ingest would move certified_until)
        conn.execute(
            schema.retirees.update()
            .where(schema.retirees.c.id_number == PEOPLE["held"]["id_number"])
            .values(certified_until=dt.date(2028, 1, 2))
        )
    with engine.connect() as conn:
        rows = reminders.report(conn, ON)
        waiting = reminders.report(conn, ON, not_reacted_only=True)
    assert {r["retiree_id"] for r in rows if r["reacted"]} == _ids("held")
    assert {r["retiree_id"] for r in waiting} == _ids("soon", "week", "today", "kin")
    assert all(r["delivery"] == "pending" for r in rows)
    # a new cycle: the held retiree is reminded again before the new due date
    nxt = reminders.run(engine, dt.date(2027, 12, 20), SETTINGS, Policy())
    assert nxt.enqueued["before30"] == 1


def test_template_override_and_bad_template(roster_in: Any, tmp_path: Path) -> None:
    (tmp_path / "before.en.txt").write_text("Hi\nHello $name, due $due_date.\n")
    custom = ReminderSettings(days_before=[30, 7], templates_dir=tmp_path)
    reminders.run(roster_in, ON, custom, Policy())
    [week] = [r for k, r in _outbox(roster_in).items() if k.startswith("reminder:before7")]
    assert week.subject == "Hi" and week.body == "Hello Retiree 2, due 2027-01-05."
    (tmp_path / "due.zh.txt").write_text("Subject\nHello $nome\n")
    with pytest.raises(reminders.TemplateError, match="nome"):
        reminders.load_templates(tmp_path)
    (tmp_path / "due.zh.txt").write_text("only a subject\n")
    with pytest.raises(reminders.TemplateError, match=r"due\.zh\.txt"):
        reminders.load_templates(tmp_path)


def test_cli_run_and_report(roster_in: Any, db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "central.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n[notify.reminders]\ndays_before = [30, 7]\n')
    cli = CliRunner()
    done = cli.invoke(main, ["--config", str(config), "reminders", "run", "--date", "2027-01-01"])
    assert done.exit_code == 0, done.output
    assert "before30: 2 enqueued (2 to remind)" in done.output and "hold: 1 enqueued" in done.output
    shown = cli.invoke(
        main, ["--config", str(config), "reminders", "report", "--since", "2027-01-01"]
    )
    assert shown.exit_code == 0, shown.output
    assert "5 reminded, 0 certified since, 5 not" in shown.output
    bad = cli.invoke(main, ["--config", str(config), "reminders", "run", "--date", "2027-13-01"])
    assert bad.exit_code == 2 and "2027-13-01" in bad.output
    config.write_text(config.read_text().replace("[30, 7]", "[400]"))
    bad = cli.invoke(main, ["--config", str(config), "reminders", "run"])
    assert bad.exit_code != 0 and "days_before" in bad.output and "Traceback" not in bad.output
