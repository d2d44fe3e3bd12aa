"""Monthly payment runs on crafted rosters, on SQLite and PostgreSQL."""

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from central.certification.devices import DeviceTrust
from central.certification.ingest import Inbound, Ingestor
from central.certification.settings import Policy
from central.payments import holds, recovery, review, runs
from central.payments.period import Period
from central.people import registries, roster
from central.store import schema
from common import idnumber

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 9, 1, 12, tzinfo=dt.UTC)
ENROLLED = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)  # the roster's first month: January
AMOUNT = 320_050  # 3,200.50
_serials = iter(range(100, 999))


def person(born: dt.date = dt.date(1950, 3, 7), **values: Any) -> dict[str, Any]:
    """A roster row with a fresh valid ID number, certified through 2026-12-31 by default."""
    serial = next(_serials)
    number = idnumber.make("110105", born, serial)
    row = {
        "id_number": number,
        "name": f"Retiree {serial}",
        "sex": idnumber.sex(number),
        "birth_date": born,
        "community": "Chaoyang",
        "monthly_amount_cents": AMOUNT,
        "bank_account": f"6222000000{serial:04d}",
        "account_name": f"Retiree {serial}",
        "status": "active",
        "certified_until": dt.date(2026, 12, 31),
    }
    return row | values


def enrol(engine: Any, *rows: dict[str, Any]) -> list[str]:
    roster.upsert(engine, rows, "test", ENROLLED)
    return [r["id_number"] for r in rows]


def line(engine: Any, period: str, retiree: str) -> Any:
    return next(r for r in runs.lines(engine, Period.parse(period)) if r.retiree_id == retiree)


def run(engine: Any, period: str, policy: Policy | None = None) -> runs.RunSummary:
    return runs.run(engine, Period.parse(period), policy or Policy(), now=NOW)


def certify(engine: Any, retiree: str, until: dt.date) -> None:
    """Move ``certified_until`` as an applied pass would (a roster never moves it)."""
    with engine.begin() as conn:
        conn.execute(
            schema.retirees.update()
            .where(schema.retirees.c.id_number == retiree)
            .values(certified_until=until, updated_at=NOW)
        )


def ingestor_for(engine: Any, pki: Any, policy: Policy | None = None) -> Ingestor:
    """Central's ingest, trusting the test fleet's terminals."""
    trust = DeviceTrust(pki.ca_file, pki.crl_file, pki.devices_dir)
    return Ingestor(engine, trust, policy or Policy())


def test_certification_on_the_due_day_and_grace(central_engine: Any) -> None:
    until_march, until_april_1st = enrol(
        central_engine,
        person(certified_until=dt.date(2026, 3, 31)),
        person(certified_until=dt.date(2026, 4, 1)),
    )
    run(central_engine, "2026-04")
    assert line(central_engine, "2026-04", until_march).reason == "certification_overdue"
    paid = line(central_engine, "2026-04", until_april_1st)
    assert (paid.decision, paid.payable_cents) == ("pay", AMOUNT)
    run(central_engine, "2026-04", Policy(grace_days=1))  # recompute: 03-31 + 1 day reaches 04-01
    assert line(central_engine, "2026-04", until_march).decision == "pay"


def test_held_for_certification_then_resumed_with_arrears(central_engine: Any) -> None:
    (late,) = enrol(central_engine, person(certified_until=dt.date(2026, 3, 15)))
    run(central_engine, "2026-04")
    run(central_engine, "2026-05")
    assert line(central_engine, "2026-05", late).decision == "hold"
    # The hold is the run's line (derived from certified_until each month): no holds row
    # or event to keep in step; the retiree's page shows the latest run's decision.
    with central_engine.connect() as conn:
        assert not conn.execute(sa.select(schema.holds)).all()
        kinds = conn.execute(
            sa.select(schema.events.c.kind).where(schema.events.c.retiree_id == late)
        ).scalars()
        assert not [kind for kind in kinds if kind.startswith("hold_")]
    assert runs.latest_line(central_engine, late) == {
        "period": "2026-05",
        "decision": "hold",
        "reason": "certification_overdue",
        "payable_cents": 0,
        "arrears_cents": 0,
    }
    certify(central_engine, late, dt.date(2027, 5, 20))
    first = run(central_engine, "2026-06")
    shown = runs.latest_line(central_engine, late)
    assert shown is not None and shown["decision"] == "resume"
    back = line(central_engine, "2026-06", late)
    assert (back.decision, back.arrears_cents, back.payable_cents) == (
        "resume",
        2 * AMOUNT,
        3 * AMOUNT,
    )
    why = review.explain(central_engine, Period.parse("2026-06"), late, Policy())
    assert "2 month(s)" in why and "2026-04, 2026-05" in why
    again = run(central_engine, "2026-06")  # same data, same answer; arrears not paid twice
    assert again.recomputed and (again.decisions, again.payable_cents) == (
        first.decisions,
        first.payable_cents,
    )
    assert line(central_engine, "2026-06", late).arrears_cents == 2 * AMOUNT
    run(central_engine, "2026-07")
    assert line(central_engine, "2026-07", late)[3:7] == ("pay", None, AMOUNT, 0)


def test_arrears_wait_through_other_holds_and_stay_unpaid_after_death(
    central_engine: Any, tmp_path: Path
) -> None:
    late, dies = enrol(
        central_engine,
        person(certified_until=dt.date(2026, 3, 15)),
        person(certified_until=dt.date(2026, 3, 15)),
    )
    run(central_engine, "2026-04")  # both held for certification: April owed
    holds.place(central_engine, late, "staff-1", now=NOW)
    run(central_engine, "2026-05")  # manual hold wins: May is not owed; April still is
    assert line(central_engine, "2026-05", late)[3:5] == ("hold", "manual")
    assert line(central_engine, "2026-05", dies).owed_cents == 2 * AMOUNT
    assert line(central_engine, "2026-05", late).owed_cents == AMOUNT
    certify(central_engine, late, dt.date(2027, 5, 20))
    holds.release(central_engine, late, "staff-1", now=NOW)
    (tmp_path / "death.csv").write_text(
        f"id_number,birth_date,death_date\n{dies},{idnumber.birth_date(dies)},2026-05-20\n"
    )
    registries.import_csv(
        central_engine, registries.RegistryKind.DEATH, tmp_path / "death.csv", now=NOW
    )
    june = run(central_engine, "2026-06")
    back = line(central_engine, "2026-06", late)
    assert (back.decision, back.arrears_cents, back.payable_cents, back.owed_cents) == (
        "resume",
        AMOUNT,
        2 * AMOUNT,
        0,
    )
    assert june.arrears_cents == AMOUNT
    why = review.explain(central_engine, Period.parse("2026-06"), late, Policy())
    assert "for 1 month(s) held only for a missed certification (2026-04)" in why
    stop = line(central_engine, "2026-06", dies)
    assert (stop.reason, stop.owed_cents) == ("deceased", 2 * AMOUNT)  # never paid to the estate
    with central_engine.connect() as conn:
        arrears = conn.execute(
            sa.text(
                "SELECT retiree_id, period, amount_cents, settled_in_run FROM arrears"
                " ORDER BY retiree_id, period"
            )
        ).all()
    assert sorted(arrears) == sorted(
        [
            (late, "2026-04", AMOUNT, june.run_id),
            (dies, "2026-04", AMOUNT, None),
            (dies, "2026-05", AMOUNT, None),
        ]
    )
    hits = {h.id_number: h for h in recovery.hits(central_engine, today=NOW.date())}
    assert hits[dies].category == "died_stopped"  # May held, April and May never back-paid
    run(central_engine, "2026-07")
    assert line(central_engine, "2026-07", late)[3:7] == ("pay", None, AMOUNT, 0)


def test_death_on_first_and_last_day_stops_from_next_month(
    central_engine: Any, tmp_path: Path
) -> None:
    first, last, april = enrol(central_engine, person(), person(), person())
    run(central_engine, "2026-04")
    run(central_engine, "2026-05")
    run(central_engine, "2026-06")  # paid: the registry has not arrived yet
    ids = {first: "2026-05-01", last: "2026-05-31", april: "2026-04-30"}
    text = "id_number,birth_date,death_date\n" + "".join(
        f"{i},{idnumber.birth_date(i)},{d}\n" for i, d in ids.items()
    )
    (tmp_path / "death.csv").write_text(text)
    report = registries.import_csv(
        central_engine, registries.RegistryKind.DEATH, tmp_path / "death.csv", now=NOW
    )
    assert (report.added, report.matched, report.deceased) == (3, 3, 3)
    run(central_engine, "2026-07")
    for retiree in ids:
        stop = line(central_engine, "2026-07", retiree)
        assert (stop.decision, stop.reason, stop.payable_cents) == ("stop", "deceased", 0)
    hits = {h.id_number: h for h in recovery.hits(central_engine, today=NOW.date())}
    assert (hits[first].category, hits[first].amount_cents) == ("died_still_paid", AMOUNT)  # June
    assert hits[last].amount_cents == AMOUNT
    assert hits[april].amount_cents == 2 * AMOUNT  # May and June
    assert "2026-05, 2026-06" in hits[april].detail
    with central_engine.connect() as conn:
        statuses = (
            conn.execute(
                sa.select(schema.retirees.c.status).where(schema.retirees.c.id_number.in_(ids))
            )
            .scalars()
            .all()
        )
    assert statuses == ["deceased"] * 3


def test_death_recompute_month_of_death_is_paid(central_engine: Any, tmp_path: Path) -> None:
    (retiree,) = enrol(central_engine, person(born=dt.date(1952, 2, 29)))
    path = tmp_path / "death.csv"
    path.write_text(f"id_number,name,birth_date,death_date\n{retiree},X,1952-02-29,2026-02-28\n")
    registries.import_csv(central_engine, registries.RegistryKind.DEATH, path, now=NOW)
    run(central_engine, "2026-02")
    assert line(central_engine, "2026-02", retiree).decision == "pay"  # status deceased, but Feb
    run(central_engine, "2026-03")
    stop = line(central_engine, "2026-03", retiree)
    assert (stop.reason, stop.basis_date) == ("deceased", dt.date(2026, 2, 28))
    assert "2026-02 was the last month" in review.explain(
        central_engine, Period.parse("2026-03"), retiree, Policy()
    )


def test_prison_holds_months_started_inside_and_resumes_without_back_pay(
    central_engine: Any, tmp_path: Path
) -> None:
    mid, on_first = enrol(central_engine, person(), person(certified_until=dt.date(2026, 5, 31)))
    path = tmp_path / "prison.csv"
    path.write_text(
        "id_number,birth_date,start_date,release_date\n"
        f"{mid},1950-03-07,2026-04-15,2026-06-15\n"
        f"{on_first},1950-03-07,2026-04-15,2026-06-01\n"
    )
    registries.import_csv(central_engine, registries.RegistryKind.PRISON, path, now=NOW)
    got = {}
    for period in ("2026-04", "2026-05", "2026-06", "2026-07"):
        run(central_engine, period)
        got[period] = [line(central_engine, period, r)[3:5] for r in (mid, on_first)]
    assert got["2026-04"] == [("pay", None), ("pay", None)]  # free on April 1st
    assert got["2026-05"] == [("hold", "imprisoned")] * 2  # also overdue: prison wins
    assert got["2026-06"] == [("hold", "imprisoned"), ("hold", "certification_overdue")]
    assert got["2026-07"][0] == ("pay", None)
    assert line(central_engine, "2026-07", mid).arrears_cents == 0
    hits = {h.id_number: h.category for h in recovery.hits(central_engine, NOW.date())}
    assert hits == {mid: "released", on_first: "released"}


def test_registry_matches_on_id_and_birth_date_never_names(
    central_engine: Any, tmp_path: Path
) -> None:
    known, namesake = enrol(central_engine, person(name="Wang Fang"), person(name="Wang Fang"))
    stranger = idnumber.make("440106", dt.date(1950, 3, 7), 11)
    wrong_birth = idnumber.make("110105", dt.date(1950, 3, 8), 12)
    enrol(central_engine, person(born=dt.date(1950, 3, 8), id_number=wrong_birth))
    # the roster row's ID says 1950-03-08; a registry row quoting the same ID with another
    # birth date is refused by the parser, so plant it directly as a registry would send it
    path = tmp_path / "death.csv"
    path.write_text(
        f"id_number,name,birth_date,death_date\n{known},Wang Fang,1950-03-07,2026-01-10\n"
        f"{stranger},Wang Fang,1950-03-07,2026-01-10\n"
    )
    registries.import_csv(central_engine, registries.RegistryKind.DEATH, path, now=NOW)
    with central_engine.begin() as conn:
        conn.execute(
            sa.update(schema.retirees)
            .where(schema.retirees.c.id_number == wrong_birth)
            .values(birth_date=dt.date(1950, 3, 9))
        )
        conn.execute(
            schema.registry_records.insert().values(
                kind="death",
                id_number=wrong_birth,
                birth_date=dt.date(1950, 3, 8),
                start_date=dt.date(2026, 1, 2),
                source="test",
                imported_at=NOW,
            )
        )
    run(central_engine, "2026-02")
    assert line(central_engine, "2026-02", known).reason == "deceased"
    assert line(central_engine, "2026-02", namesake).decision == "pay"  # same name, alive
    assert line(central_engine, "2026-02", wrong_birth).decision == "pay"  # not applied
    cats = {h.id_number: h.category for h in recovery.hits(central_engine, NOW.date())}
    assert cats == {
        known: "died_stopped",
        stranger: "not_on_roster",
        wrong_birth: "birth_date_mismatch",
    }


def test_manual_status_incomplete_and_not_retired(central_engine: Any) -> None:
    held, suspended, no_account, young = enrol(
        central_engine,
        person(),
        person(status="suspended"),
        person(bank_account=None),
        person(retirement_date=dt.date(2026, 5, 10)),
    )
    holds.place(central_engine, held, "staff-1", now=NOW)
    run(central_engine, "2026-04")
    got = [line(central_engine, "2026-04", r)[3:5] for r in (held, suspended, no_account, young)]
    assert got == [
        ("hold", "manual"),
        ("hold", "suspended"),
        ("hold", "incomplete"),
        ("stop", "not_retired"),
    ]
    with central_engine.begin() as conn:
        conn.execute(schema.holds.update().values(released_at=NOW))
    run(central_engine, "2026-05")
    assert line(central_engine, "2026-05", held)[3:7] == ("pay", None, AMOUNT, 0)  # no back-pay
    assert line(central_engine, "2026-05", young).decision == "pay"
    change = review.diff(central_engine, Period.parse("2026-05"))
    assert change.transitions == {"hold:manual -> pay": 1, "stop:not_retired -> pay": 1}


def test_run_order_is_enforced(central_engine: Any) -> None:
    enrol(central_engine, person())
    run(central_engine, "2026-04")
    run(central_engine, "2026-05")
    with pytest.raises(runs.RunError, match="the next run is 2026-06"):
        run(central_engine, "2026-08")
    with pytest.raises(runs.RunError, match="not the latest"):
        run(central_engine, "2026-04")


def test_a_pass_ends_a_certification_hold_not_a_manual_one(
    central_engine: Any, central_pki: Any
) -> None:
    late, kept = enrol(
        central_engine,
        person(certified_until=dt.date(2026, 3, 15)),
        person(certified_until=dt.date(2026, 3, 15)),
    )
    now = dt.datetime.now(dt.UTC)
    holds.place(central_engine, kept, "staff-7", now=now)
    run(central_engine, "2026-04")
    assert line(central_engine, "2026-04", late).reason == "certification_overdue"
    assert line(central_engine, "2026-04", kept).reason == "manual"
    term = central_pki.terminal("term-0001")
    ingestor = ingestor_for(central_engine, central_pki)
    for who in (late, kept):
        outcome = ingestor.apply(Inbound(term.topic(), term.sign(term.result(who)), now))
        assert outcome.status.value == "applied"
    run(central_engine, "2026-05")
    back = line(central_engine, "2026-05", late)
    assert (back.decision, back.arrears_cents, back.payable_cents) == ("resume", AMOUNT, 2 * AMOUNT)
    assert line(central_engine, "2026-05", kept).reason == "manual"  # staff release it, not a pass
    with central_engine.connect() as conn:
        rows = conn.execute(sa.select(schema.holds.c.retiree_id, schema.holds.c.released_at)).all()
    assert rows == [(kept, None)]


def test_a_pass_for_a_deceased_retiree_is_refused_and_flagged(
    central_engine: Any, central_pki: Any
) -> None:
    (dead,) = enrol(central_engine, person(status="deceased", certified_until=dt.date(2026, 1, 1)))
    term = central_pki.terminal("term-0002")
    ingestor = ingestor_for(central_engine, central_pki)
    payload = term.sign(term.result(dead))
    for _ in range(2):  # the terminal re-sends: still one flag
        outcome = ingestor.apply(Inbound(term.topic(), payload, dt.datetime.now(dt.UTC)))
        assert (outcome.status.value, outcome.reason.value) == ("rejected", "retiree_inactive")
    with central_engine.connect() as conn:
        flags = conn.execute(sa.select(schema.fraud_flags)).all()
        until = conn.scalar(
            sa.select(schema.retirees.c.certified_until).where(schema.retirees.c.id_number == dead)
        )
    assert [(f.kind, f.retiree_id) for f in flags] == [("pass_while_deceased", dead)]
    assert until == dt.date(2026, 1, 1)


def test_birthday_anchored_pass_through_ingest(central_engine: Any, central_pki: Any) -> None:
    (leap,) = enrol(central_engine, person(born=dt.date(1952, 2, 29), certified_until=None))
    term = central_pki.terminal("term-0003")
    policy = Policy(birthday_anchored=True, reminder_days=30)
    ingestor = ingestor_for(central_engine, central_pki, policy)
    now = dt.datetime.now(dt.UTC)
    outcome = ingestor.apply(Inbound(term.topic(), term.sign(term.result(leap)), now))
    floor = now.date() + dt.timedelta(days=30)
    assert outcome.ack is not None and outcome.ack.certified_until is not None
    assert outcome.ack.certified_until.month == 2 and outcome.ack.certified_until > floor
    assert outcome.ack.certified_until <= floor.replace(year=floor.year + 1)


def test_manual_holds_keep_their_notes_and_refuse_unknown_retirees(central_engine: Any) -> None:
    (kept,) = enrol(central_engine, person())
    hold = holds.place(central_engine, kept, "staff-7", "bank letter returned", now=NOW)
    assert holds.release(central_engine, kept, "staff-8", "address confirmed", now=NOW) == 1
    assert holds.release(central_engine, kept, "staff-8", now=NOW) == 0
    ev = schema.events
    with central_engine.connect() as conn:
        got = conn.execute(
            sa.select(ev.c.kind, ev.c.actor, ev.c.detail)
            .where(ev.c.kind.like("hold_%"))
            .order_by(ev.c.id)
        ).all()
    assert [tuple(row) for row in got] == [
        (
            "hold_placed",
            "staff-7",
            {"hold_id": hold, "reason": "manual", "note": "bank letter returned"},
        ),
        (
            "hold_released",
            "staff-8",
            {"hold_id": hold, "reason": "manual", "note": "address confirmed"},
        ),
    ]
    unknown = idnumber.make("110105", dt.date(1950, 1, 1), 1)
    for act in (holds.place, holds.release):
        with pytest.raises(holds.UnknownRetireeError, match=f"no retiree {unknown}"):
            act(central_engine, unknown, "x")
